import { describe, expect, it } from "vitest";
import { createStageState, type StageStateInternal } from "../state/stage-state.js";
import type { Envelope, InputMessage } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import type { PopularityRow } from "../actors/stages/index.js";
import { createPopularityHandler } from "../actors/plan/index.js";
import { DAY, HOUR, MINUTE } from "../actors/contract/index.js";
import { fakeOutput } from "./helpers/stage.js";
import { testStateDb } from "./helpers/state-db.js";

/**
 * Popularity keeps an item's purchases one key per hour bucket: a snapshot writes the buckets a
 * purchase or the horizon changed, where an item's every bucket (up to 168) was one value,
 * rewritten whole; its rows are tuples. Items and rows of the layout before load and keep
 * counting; a restart gives the rows of a run without one.
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const WEEK = 7 * DAY;

let seq = 0;
const buy = (ts: number, i: string, extra: Partial<ParsedRecord> = {}): ParsedRecord => {
  seq++;
  return {
    id: `id-${seq}`,
    t: "purchase",
    ts,
    u: "u1",
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

/** A popularity handler on `state`, fed hops numbered on from `hops.n` (a restart goes on). */
function handlerOn(state: StageStateInternal, hops = { n: 0 }) {
  const { out, rec } = fakeOutput();
  const h = createPopularityHandler(state, out, { partition: 1, horizonMs: WEEK });
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
    row: (i: string) => h.row(i),
    rows: () => rec.kvPuts.map(([, , v]) => v as PopularityRow),
  };
}

/** Keys a snapshot writes, per map. */
const written = (state: StageStateInternal) =>
  new Map(
    state.takeDelta().maps.map(([name, puts, dels]) => [name, puts.length / 2 + dels.length]),
  );

describe("popularity buckets", () => {
  const dbs = testStateDb("reco-popularity-buckets-");

  it("a purchase of an item with many hours writes its one bucket", () => {
    const state = createStageState();
    const h = handlerOn(state);
    for (let x = 0; x < 100; x++) h.feed(T0 + x * HOUR, [buy(T0 + x * HOUR, "p1", { pr: 2 })]);
    written(state);
    h.feed(T0 + 100 * HOUR, [buy(T0 + 100 * HOUR, "p1", { pr: 4 })]);
    expect(written(state)).toEqual(
      new Map([
        ["bucket", 1],
        ["row", 1],
      ]),
    );
    expect(h.row("p1")).toMatchObject({ purchases: 101, avgPrice: (100 * 2 + 4) / 101 });
  });

  it("of the layout before (one value per item) load from LevelDB and keep counting", async () => {
    const db = await dbs.open();
    const store = db.instance("popularity", 1);
    const old = createStageState();
    old.map("item").set("p|1", {
      h: { [T0]: [2, 30, 2], [T0 + HOUR]: [1, 0, 0] },
      c: "books",
      b: "acme",
    });
    const oldRow = { item: "p|1", purchases: 3, category: "books", brand: "acme", avgPrice: 15 };
    old.map("row").set("p|1", { ...oldRow, wm: T0 + HOUR });
    await store.write(old);

    const loaded = await store.load();
    const h = handlerOn(loaded);
    expect(h.row("p|1")).toEqual({ ...oldRow, wm: T0 + HOUR });
    h.feed(T0 + 2 * HOUR, [buy(T0 + 2 * HOUR, "p|1", { pr: 6 })]);
    expect(h.rows()).toEqual([
      {
        item: "p|1",
        purchases: 4,
        category: "books",
        brand: "acme",
        avgPrice: 36 / 3,
        wm: T0 + 2 * HOUR,
      },
    ]);
    await store.write(loaded);
    const again = await store.load();
    expect([...again.map("item").keys()]).toEqual([]);
    expect(again.map("bucket").size).toBe(3);
    expect(again.map("meta").get("p|1")).toEqual(["books", "acme"]);
    // Rows as [purchases, avgPrice, category, brand, wm], the item their key.
    expect(again.map("row").get("p|1")).toEqual([4, 12, "books", "acme", T0 + 2 * HOUR]);
  });

  it("restored from LevelDB after each batch give the rows of a run without restarts", async () => {
    const db = await dbs.open();
    const batches: [number, ParsedRecord[]][] = [];
    for (let b = 0; b < 40; b++) {
      const ts = T0 + b * 7 * HOUR;
      batches.push([
        ts,
        [
          buy(ts, `p${b % 3}`, { pr: 1.1 * (b % 5), c: b % 2 ? "toys" : "" }),
          buy(ts - 2 * DAY, "p9", { pr: 0.3, b: "x" }),
          buy(ts + MINUTE, `p${b % 4}`),
          // An item bought early only: it leaves the table a week later.
          ...(b < 3 ? [buy(ts + 2 * MINUTE, "p7", { pr: 9.99 })] : []),
        ],
      ]);
    }
    const run = async (restart: boolean) => {
      const store = db.instance(restart ? "restarted" : "straight", 1);
      const hops = { n: 0 };
      let state = await store.load();
      let h = handlerOn(state, hops);
      const rows: PopularityRow[] = [];
      for (const [wm, recs] of batches) {
        h.feed(wm, recs);
        await store.write(state);
        if (restart) {
          rows.push(...h.rows());
          state = await store.load();
          h = handlerOn(state, hops);
        }
      }
      return [...rows, ...h.rows()];
    };
    const straight = await run(false);
    // Items leave the table as their purchases leave the horizon (rows of 0).
    expect(straight.some((r) => r.purchases === 0)).toBe(true);
    expect(await run(true)).toEqual(straight);
  });
});
