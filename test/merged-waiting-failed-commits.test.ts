import { describe, expect, it } from "vitest";
import { map } from "rxjs";
import { defineStage, port } from "../runtime/index.js";
import { testStateDb } from "./helpers/state-db.js";
import { encodeEnvelope } from "../actors/host/index.js";
import { loadMergedHandler, parseInput } from "../actors/stages/index.js";
import { subjects } from "../actors/contract/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import type { StageStateInternal } from "../state/stage-state.js";
import type { ValueCodec } from "../runtime/index.js";

const fed: string[] = [];
/** A user's last record, as bytes (a codec map read per record, as covisit's user values). */
const lastCodec: ValueCodec<{ s: number; i: string }> = {
  encode: (v) => new TextEncoder().encode(JSON.stringify(v)),
  decode: (b) =>
    JSON.parse(typeof b === "string" ? b : new TextDecoder().decode(b as Uint8Array)) as {
      s: number;
      i: string;
    },
};
/** Records each record it is fed with the user's record before it (kept in its state). */
const recorder = defineStage({
  name: "recorder",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx) => {
    const last = ctx.state.map<{ s: number; i: string }>("last", { codec: lastCodec });
    return {
      operator: (batches$) =>
        batches$.pipe(
          map((b) => {
            for (const r of b.records) {
              fed.push(JSON.stringify([r, last.get(r.u) ?? null]));
              last.set(r.u, { s: r.s, i: r.i });
            }
            return {};
          }),
        ),
      view: {},
    };
  },
});

function rng(seed: number) {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

type Msg = { seq: number; subject: string; data: Uint8Array; headers: Record<string, never> };

/** Parse-like hops of P partitions: records in EVENTS order, progress broadcasts, interleaved. */
function makeLog(seed: number, P: number, events: number): Msg[] {
  const rnd = rng(seed);
  const pending: ParsedRecord[][] = Array.from({ length: P }, () => []);
  const queues: { upTo: number; recs: ParsedRecord[] }[][] = Array.from({ length: P }, () => []);
  let s = 0;
  for (let n = 0; n < events; n++) {
    s++;
    const u = Math.floor(rnd() * 20);
    const p = u % P;
    pending[p]!.push({
      id: `e${s}`,
      t: "view",
      ts: 1000 + s,
      u: `u${u}`,
      i: `i${Math.floor(rnd() * 30)}`,
      c: "cat",
      b: "x".repeat(Math.floor(rnd() * 3000)),
      pr: Math.round(rnd() * 10000) / 100,
      r: -1,
      s,
      wb: 999 + s,
    });
    if (rnd() < 0.3) {
      // parse flushes: every partition gets a hop (records, or an empty progress hop)
      for (let q = 0; q < P; q++) {
        if (pending[q]!.length > 0 || rnd() < 0.5) queues[q]!.push({ upTo: s, recs: pending[q]! });
        pending[q] = [];
      }
    }
  }
  for (let q = 0; q < P; q++) queues[q]!.push({ upTo: s, recs: pending[q]! });
  const out: Msg[] = [];
  let seq = 0;
  while (queues.some((q) => q.length > 0)) {
    const live = queues.map((q, i) => (q.length > 0 ? i : -1)).filter((i) => i >= 0);
    // a partition runs ahead for a while
    const q = live[Math.floor(rnd() * live.length)]!;
    const n = 1 + Math.floor(rnd() * 4);
    for (let k = 0; k < n && queues[q]!.length > 0; k++) {
      const h = queues[q]!.shift()!;
      out.push({
        seq: ++seq,
        subject: subjects.parse(q),
        data: encodeEnvelope(h.upTo, 0, h.recs),
        headers: {},
      });
    }
  }
  return out;
}

/**
 * A merged stage (merged-input.ts) whose snapshot writes fail and restart it from its last
 * snapshot, or that restarts after a write, is fed the same records, each with the same state
 * read beside it, as a run whose writes all succeed. Its waiting records are a codec map settled
 * at load (merged-waiting.ts reads every key); the stage's own per-user codec map is loaded lazily
 * and read per record, as covisit's user values are: a snapshot after a restart adopted its delta
 * into a buffer that finishing the lazy load dropped (seeds 9 and 23 threw in capture).
 */
describe("a merged stage under failed snapshot writes and restarts", () => {
  const dbs = testStateDb("reco-merged-fail-");

  const run = async (name: string, log: Msg[], seed: number, failRate: number, restartRate = 0) => {
    const rnd = rng(seed);
    fed.length = 0;
    const db = await dbs.open({ checkpointMinKeys: 30 });
    const store = db.instance(name, 0);
    let state: StageStateInternal = await store.load();
    let h = await loadMergedHandler(recorder, state, {}, parseInput(2));
    let committed = { at: 0, fed: 0 };
    for (let m = 0; m < log.length;) {
      h.handle(log[m]!, 0);
      m++;
      if (rnd() < 0.4) {
        const batch = store.capture(state);
        if (rnd() < failRate) {
          // a failed write: restart from the last snapshot
          fed.length = committed.fed;
          m = committed.at;
          state = await store.load();
          h = await loadMergedHandler(recorder, state, {}, parseInput(2));
        } else {
          await batch.commit();
          committed = { at: m, fed: fed.length };
          if (rnd() < restartRate) {
            state = await store.load();
            h = await loadMergedHandler(recorder, state, {}, parseInput(2));
          }
        }
      }
    }
    return [...fed];
  };

  it("feeds what a run without failures feeds", async () => {
    for (let seed = 1; seed <= 24; seed++) {
      const log = makeLog(seed, 2, 600);
      const ref = await run(`ref${seed}`, log, seed, 0);
      expect(ref.length).toBe(600);
      const got = await run(`fail${seed}`, log, seed, 0.3, 0.3);
      expect(got, `seed ${seed}`).toEqual(ref);
    }
  });
});
