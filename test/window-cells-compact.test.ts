import { describe, expect, it } from "vitest";
import { createStageState, type StageStateInternal } from "../state/stage-state.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { windowCellKey as cellKey, type WindowRecord } from "../actors/stages/index.js";
import { createWindowHandler } from "../actors/plan/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";
import { testStateDb } from "./helpers/state-db.js";

/**
 * The window's cells are written as [n, c, b, pr] under keys "<w>|<t>|<length of u>|<u><i>":
 * their JSON at each snapshot was the largest of the design stages' (~100 B per event on the
 * REES46 head), objects repeating their four names and keys holding an escaped JSON array.
 * Cells of the layout before load and keep counting; a restart gives the counts of a run
 * without one.
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const SIZE = 5 * MINUTE;
const OOO = 10 * MINUTE;

let seq = 0;
const ev = (ts: number, u: string, i: string, extra: Partial<ParsedRecord> = {}): ParsedRecord => {
  seq++;
  return {
    id: `id-${seq}`,
    t: "view",
    ts,
    u,
    i,
    c: "",
    b: "",
    pr: -1,
    r: -1,
    s: seq,
    wb: -1,
    ...extra,
  };
};

/** A window handler on `state`, fed hops numbered on from `hops.n` (a restart goes on). */
function handlerOn(state: StageStateInternal, hops = { n: 0 }) {
  const { out, rec } = fakeOutput();
  const h = createWindowHandler(state, out, { partition: 0, sizeMs: SIZE, outOfOrdernessMs: OOO });
  return (wm: number, recs: ParsedRecord[]): WindowRecord[] => {
    const before = rec.emits.length;
    const n = ++hops.n;
    const env: Envelope<ParsedRecord> = { upTo: n, wm, recs };
    const msg: InputMessage = {
      seq: n,
      subject: "",
      data: enc.encode(JSON.stringify(env)),
      headers: {},
    };
    h.handle(msg, n - 1);
    return rec.emits
      .slice(before)
      .map(([, r]) => r as WindowRecord)
      .filter((r) => !("close" in r));
  };
}

describe("window cells, compact", () => {
  const dbs = testStateDb("reco-window-cells-");

  it("have keys that tell users and items apart whatever they hold", () => {
    expect(cellKey(T0, "view", "a|b", "c")).not.toBe(cellKey(T0, "view", "a", "|bc"));
    expect(cellKey(T0, "view", "ab", "c")).not.toBe(cellKey(T0, "view", "a", "bc"));
  });

  it("are written as tuples, fewer bytes than the objects before", () => {
    const state = createStageState();
    const feed = handlerOn(state);
    feed(T0, [ev(T0, "541312140", "44600062", { c: "appliances", b: "aqua", pr: 33.2 })]);
    const { maps } = state.takeDelta();
    const [, puts] = maps.find(([name]) => name === "cell")!;
    expect(puts).toEqual([
      cellKey(T0, "view", "541312140", "44600062"),
      [1, "appliances", "aqua", 33.2],
    ]);
    const before = JSON.stringify([
      `${T0}|view|${JSON.stringify(["541312140", "44600062"])}`,
      { n: 1, c: "appliances", b: "aqua", pr: 33.2 },
    ]);
    expect(JSON.stringify(puts).length).toBeLessThan(before.length * 0.8);
  });

  it("of the layout before (JSON keys, objects) load from LevelDB and keep counting", async () => {
    const db = await dbs.open();
    const store = db.instance("window", 0);
    const old = createStageState();
    const key = `${T0}|view|${JSON.stringify(["u|1", "p1"])}`;
    old.map("cell").set(key, { n: 2, c: "books", b: "acme", pr: 9.5 });
    await store.write(old);

    const loaded = await store.load();
    const feed = handlerOn(loaded);
    expect(feed(T0 + MINUTE, [ev(T0 + MINUTE, "u|1", "p1")])).toMatchObject([
      { w: T0, u: "u|1", i: "p1", n: 3, c: "books", b: "acme", pr: 9.5 },
    ]);
    await store.write(loaded);
    const again = await store.load();
    expect([...again.map("cell").entries()]).toEqual([
      [cellKey(T0, "view", "u|1", "p1"), [3, "books", "acme", 9.5]],
    ]);
  });

  it("restored from LevelDB after each batch count as a run without restarts", async () => {
    const db = await dbs.open();
    const batches: [number, ParsedRecord[]][] = [];
    for (let b = 0; b < 12; b++) {
      const ts = T0 + b * 2 * MINUTE;
      batches.push([
        ts,
        [
          ev(ts, "u1", "p1", { pr: 1.25 }),
          ev(ts + 1, "u|2", "p|1", { c: "toys" }),
          ev(ts + 2, "u1", "p1"),
          ev(ts - 3 * MINUTE, "u3", "p2", { b: "x" }),
        ],
      ]);
    }
    const run = async (restart: boolean) => {
      const store = db.instance(restart ? "restarted" : "straight", 0);
      const hops = { n: 0 };
      let state = await store.load();
      let feed = handlerOn(state, hops);
      const outs: WindowRecord[] = [];
      for (const [wm, recs] of batches) {
        outs.push(...feed(wm, recs));
        await store.write(state);
        if (restart) {
          state = await store.load();
          feed = handlerOn(state, hops);
        }
      }
      return outs;
    };
    const straight = await run(false);
    expect(straight.length).toBeGreaterThan(30);
    expect(await run(true)).toEqual(straight);
  });
});
