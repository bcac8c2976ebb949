import { describe, expect, it } from "vitest";
import { map } from "rxjs";
import { defineStage, port } from "../runtime/index.js";
import { testStateDb } from "./helpers/state-db.js";
import { encodeEnvelope } from "../actors/host/index.js";
import {
  loadMergedHandler,
  MAP,
  OLD_MAP,
  pairsInput,
  parseInput,
  waitingCodec,
} from "../actors/stages/index.js";
import { subjects } from "../actors/contract/index.js";
import type { PairRecord, ParsedRecord } from "../actors/contract/index.js";
import { createStageState, type StageStateInternal } from "../state/stage-state.js";
import { readSections } from "../state/sections.js";
import { recordMaker } from "./helpers/source-stages.js";

/**
 * A merged stage keeps the records waiting for a partition behind the others one key per hop,
 * so a snapshot writes the hops that came and went, not each subject's whole list (which grows
 * while the partition is behind: the layout before rewrote all of it at every snapshot).
 */

const fed: number[] = [];
const recorder = defineStage({
  name: "recorder",
  input: port<ParsedRecord>(),
  ports: {},
  create: () => ({
    operator: (batches$) =>
      batches$.pipe(
        map((b) => {
          for (const r of b.records) fed.push(r.s);
          return {};
        }),
      ),
    view: {},
  }),
});

let seq = 0;
const hop = (p: number, upTo: number, recs: ParsedRecord[]) => ({
  seq: ++seq,
  subject: subjects.parse(p),
  data: encodeEnvelope(upTo, 0, recs),
  headers: {},
});

/** Bytes of one map's section in a snapshot's binary part (0: not written). */
function sectionBytes(state: StageStateInternal, name: string): number {
  const { bin } = state.takeDelta();
  if (!bin) return 0;
  for (const s of readSections(bin)) if (s.name === name) return s.end - s.start;
  return 0;
}

describe("a merged stage's waiting records, one key per hop", () => {
  const dbs = testStateDb("reco-merged-hops-");

  it("are written as they change: a snapshot's bytes do not grow with the list", async () => {
    const rec = recordMaker();
    const state = createStageState();
    const h = await loadMergedHandler(recorder, state, {}, parseInput(2));
    const sizes: number[] = [];
    // Partition 1 reports nothing: partition 0's hops pile up, 20 records between snapshots.
    for (let n = 0; n < 10; n++) {
      const recs = Array.from({ length: 20 }, (_, x) => rec(`u${x}`, `i${n}`, 1000 + n));
      h.handle(hop(0, recs[recs.length - 1]!.s, recs), 0);
      sizes.push(sectionBytes(state, MAP));
    }
    expect(fed).toEqual([]);
    // Each snapshot writes one hop's records: the tenth about as many bytes as the first (its
    // ids and sequences have a digit more), where whole lists made it ten times as many.
    expect(Math.max(...sizes)).toBeLessThan(sizes[0]! * 1.2);
  });

  it("come back from LevelDB as written, in EVENTS order, hop by hop and partly taken", async () => {
    const run = async (restart: boolean) => {
      fed.length = 0;
      const db = await dbs.open();
      const rec = recordMaker();
      const r = Array.from({ length: 40 }, (_, x) => rec(`u${x}`, `i${x}`, 1000 + x));
      const odd = r.filter((x) => x.s % 2 === 1);
      const even = r.filter((x) => x.s % 2 === 0);
      // Each run in a sublevel of its own.
      const name = restart ? "restarted" : "straight";
      // One store per instance: it keeps what is on disk (the next delta's number).
      const store = db.instance(name, 0);
      let state = await store.load();
      let h = await loadMergedHandler(recorder, state, {}, parseInput(2));
      const steps: [number, number, ParsedRecord[]][] = [
        [0, 10, odd.slice(0, 5)],
        [0, 20, odd.slice(5, 10)],
        // Partition 1 reports up to 7: the first hop of partition 0 is partly taken.
        [1, 7, even.slice(0, 3)],
        [0, 30, odd.slice(10, 15)],
        [1, 25, even.slice(3, 12)],
        [0, 40, odd.slice(15)],
        [1, 40, even.slice(12)],
      ];
      for (const [p, upTo, recs] of steps) {
        h.handle(hop(p, upTo, recs), 0);
        await store.write(state);
        if (restart) {
          state = await store.load();
          h = await loadMergedHandler(recorder, state, {}, parseInput(2));
        }
      }
      return [...fed];
    };
    const straight = await run(false);
    expect(straight).toEqual(Array.from({ length: 40 }, (_, x) => x + 1));
    expect(await run(true)).toEqual(straight);
  });

  it("are MessagePack, smaller than their JSON text, and a JSON list written before decodes", () => {
    const rec = recordMaker();
    const recs = [rec("u1", "i1", 1000, "view", "books"), rec("u2", "i2", 2000, "purchase")];
    recs[1]!.pr = 12.5;
    const bytes = waitingCodec.encode(recs);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(waitingCodec.decode(bytes)).toEqual(recs);
    expect(waitingCodec.decode(JSON.stringify(recs))).toEqual(recs);
    expect((bytes as Uint8Array).length).toBeLessThan(JSON.stringify(recs).length * 0.8);
  });

  it("written as JSON text by an earlier version load, and are fed", async () => {
    const db = await dbs.open();
    const rec = recordMaker();
    const r = Array.from({ length: 4 }, (_, x) => rec(`u${x}`, `i${x}`, 1000 + x));
    const old = createStageState();
    old.map<ParsedRecord[]>(MAP, { text: true }).set(`${subjects.parse(0)}|1`, [r[0]!, r[2]!]);
    old.map("positions").set(subjects.parse(0), { upTo: 4, s: 3, wm: 0 });
    const store = db.instance("recorder-text", 0);
    await store.write(old);

    fed.length = 0;
    const loaded = await store.load();
    const h = await loadMergedHandler(recorder, loaded, {}, parseInput(2));
    h.handle(hop(1, 4, [r[1]!, r[3]!]), 0);
    expect(fed).toEqual([1, 2, 3, 4]);
  });

  it("of the layout before (a subject's whole list as JSON text) load and move to hop keys", async () => {
    const db = await dbs.open();
    const rec = recordMaker();
    const r = Array.from({ length: 6 }, (_, x) => rec(`u${x}`, `i${x}`, 1000 + x));
    // What the layout before wrote: partition 0's records waiting under its subject.
    const old = createStageState();
    old.map<ParsedRecord[]>(OLD_MAP, { text: true }).set(subjects.parse(0), [r[0]!, r[2]!, r[4]!]);
    old.map("positions").set(subjects.parse(0), { upTo: 6, s: 5, wm: 0 });
    const store = db.instance("recorder", 0);
    await store.write(old);

    fed.length = 0;
    const loaded = await store.load();
    const h = await loadMergedHandler(recorder, loaded, {}, parseInput(2));
    await store.write(loaded);
    const again = await (await dbs.open()).instance("recorder", 0).load();
    expect([...again.map(OLD_MAP).keys()]).toEqual([]);
    expect([...again.map(MAP).keys()]).toEqual([`${subjects.parse(0)}|1`]);
    h.handle(hop(1, 6, [r[1]!, r[3]!, r[5]!]), 0);
    expect(fed).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe("a merged stage fed pair records", () => {
  const marks: [number, number][] = [];
  const pairsRecorder = defineStage({
    name: "pairs-recorder",
    input: port<PairRecord>(),
    ports: {},
    create: () => ({
      operator: (batches$) =>
        batches$.pipe(
          map((b) => {
            for (const r of b.records) marks.push([r.s, r.p ?? -1]);
            return {};
          }),
        ),
      view: {},
    }),
  });
  const mark = (s: number, p: number): PairRecord => ({ s, i: "", ts: -1, n: [], w: [], p });
  const own = (s: number): PairRecord => ({ s, i: "a", ts: s, n: [], w: [] });
  const pairsHop = (p: number, recs: PairRecord[]) => ({
    seq: ++seq,
    subject: subjects.pairs(0, p),
    // The hop's own upTo and wm say nothing of the merge: its last record (a mark) does.
    data: encodeEnvelope(seq, 1e12, recs),
    headers: {},
  });

  it("feeds records once every user partition has marked past them, and a mark again at the same sequence", async () => {
    marks.length = 0;
    const state = createStageState();
    const h = await loadMergedHandler(pairsRecorder, state, {}, pairsInput(0, 2));
    h.handle(pairsHop(0, [own(3), mark(5, 100)]), 0);
    // Partition 1 has marked nothing yet: nothing fed, whatever the hops' wm says.
    expect(marks).toEqual([]);
    h.handle(pairsHop(1, [own(4), mark(4, 90)]), 0);
    expect(marks).toEqual([
      [3, -1],
      [4, -1],
      [4, 90],
    ]);
    // Partition 1's event time moves on at the same position: taken again (and waits for
    // nothing, its position is the one it marked), as does partition 0's next mark twice.
    h.handle(pairsHop(1, [mark(4, 95)]), 0);
    h.handle(pairsHop(0, [mark(5, 110)]), 0);
    h.handle(pairsHop(1, [mark(6, 120)]), 0);
    expect(marks.slice(3)).toEqual([
      [4, 95],
      [5, 100],
      [5, 110],
    ]);
    // Partition 1's mark past partition 0's waited for it; partition 0's next ones wait in turn.
    h.handle(pairsHop(0, [own(7), mark(7, 130)]), 0);
    expect(marks.slice(6)).toEqual([[6, 120]]);
    h.handle(pairsHop(1, [mark(8, 140)]), 0);
    expect(marks.slice(7)).toEqual([
      [7, -1],
      [7, 130],
    ]);
  });
});
