import { describe, expect, it } from "vitest";
import { createStageState, type StageStateInternal } from "../state/stage-state.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { trendingCellKey as cellKey, type TrendingPart } from "../actors/stages/index.js";
import { createTrendingHandler } from "../actors/plan/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";
import { testStateDb } from "./helpers/state-db.js";

/**
 * Trending's cells are keyed "h|<hour number>|<item>" and "d|...": every event changes one cell
 * of each kind, and the key ("1h|<hour start in ms>|<item>" before) was most of a cell's JSON at
 * each snapshot. Cells of the layout before load and keep counting; a restart gives the lists of
 * a run without one.
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);

let seq = 0;
const ev = (ts: number, i: string, t: EventType = "view"): ParsedRecord => {
  seq++;
  return { id: `id-${seq}`, t, ts, u: "u1", i, c: "", b: "", pr: -1, r: -1, s: seq, wb: -1 };
};

/** A trending handler on `state`, fed hops numbered on from `hops.n` (a restart goes on). */
function handlerOn(state: StageStateInternal, hops = { n: 0 }) {
  const { out, rec } = fakeOutput();
  const h = createTrendingHandler(state, out, {
    partition: 0,
    oneHourOutOfOrdernessMs: 2 * HOUR,
    oneDayOutOfOrdernessMs: 26 * HOUR,
    weights: { view: 1, click: 2, cart: 3 },
    topK: 10,
  });
  return {
    feed(wm: number, recs: ParsedRecord[]) {
      const n = ++hops.n;
      const env: Envelope<ParsedRecord> = { upTo: n, wm, recs };
      const msg: InputMessage = {
        seq: n,
        subject: "",
        data: enc.encode(JSON.stringify(env)),
        headers: {},
      };
      h.handle(msg, n - 1);
    },
    part: (kind: "1h" | "24h", start: number) => h.part(kind, start),
    /** The lists put so far, in order. */
    puts: () => rec.kvPuts.map(([, k, v]) => [k, v] as [string, TrendingPart]),
  };
}

describe("trending cells, compact keys", () => {
  const dbs = testStateDb("reco-trending-cells-");

  it("are written under keys of the hour's number", () => {
    const state = createStageState();
    handlerOn(state).feed(T0, [ev(T0 + MINUTE, "44600062")]);
    const [, puts] = state.takeDelta().maps.find(([name]) => name === "cell")!;
    const hour = T0 / HOUR;
    expect(puts).toEqual([`h|${hour}|44600062`, [1], `d|${hour}|44600062`, [1]]);
    expect(cellKey("24h", T0, "x")).toBe(`d|${hour}|x`);
  });

  it("of the layout before load from LevelDB and keep counting", async () => {
    const db = await dbs.open();
    const store = db.instance("trending", 0);
    const old = createStageState();
    old.map("cell").set(`1h|${T0}|p|1`, [2, 1]);
    old.map("cell").set(`24h|${T0}|p|1`, [2, 1]);
    await store.write(old);

    const loaded = await store.load();
    const h = handlerOn(loaded);
    h.feed(T0 + 2 * MINUTE, [ev(T0 + 2 * MINUTE, "p|1", "click")]);
    expect(h.part("1h", T0).items).toEqual([["p|1", 6, 2, 2, 0, 0]]);
    expect(h.part("24h", T0 + HOUR - 24 * HOUR).items).toEqual([["p|1", 6, 2, 2, 0, 0]]);
    await store.write(loaded);
    const again = await store.load();
    expect(new Map(again.map("cell").entries())).toEqual(
      new Map([
        [cellKey("1h", T0, "p|1"), [2, 2]],
        [cellKey("24h", T0, "p|1"), [2, 2]],
      ]),
    );
  });

  it("restored from LevelDB after each batch give the lists of a run without restarts", async () => {
    const db = await dbs.open();
    const batches: [number, ParsedRecord[]][] = [];
    for (let b = 0; b < 30; b++) {
      const ts = T0 + b * 20 * MINUTE;
      batches.push([
        ts,
        [ev(ts, `p${b % 4}`), ev(ts + 1, `p${b % 3}`, "cart"), ev(ts - 30 * MINUTE, "p9", "click")],
      ]);
    }
    const run = async (restart: boolean) => {
      const store = db.instance(restart ? "restarted" : "straight", 0);
      const hops = { n: 0 };
      let state = await store.load();
      let h = handlerOn(state, hops);
      const puts: [string, TrendingPart][] = [];
      for (const [wm, recs] of batches) {
        h.feed(wm, recs);
        await store.write(state);
        if (restart) {
          puts.push(...h.puts());
          state = await store.load();
          h = handlerOn(state, hops);
        }
      }
      return [...puts, ...h.puts()];
    };
    const straight = await run(false);
    expect(straight.filter(([, p]) => p.final).length).toBeGreaterThan(4);
    expect(await run(true)).toEqual(straight);
  });
});
