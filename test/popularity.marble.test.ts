import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import {
  heartbeatRow,
  popularityStage,
  type LatePurchase,
  type PopularityRow,
} from "../actors/stages/index.js";
import { DAY, HOUR, MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0); // an hour boundary
const WEEK = 7 * DAY;

let seq = 0;
function ev(ts: number, i: string, t: EventType = "purchase", extra: Partial<ParsedRecord> = {}) {
  seq++;
  const r: ParsedRecord = {
    id: `id-${seq}`,
    t,
    ts,
    u: "u1",
    i,
    c: "",
    b: "",
    pr: -1,
    r: -1,
    s: seq,
    wb: -1,
  };
  return { ...r, ...extra };
}
const row = (item: string, purchases: number, wm: number, avgPrice = 0): PopularityRow => ({
  item,
  purchases,
  category: "",
  brand: "",
  avgPrice,
  wm,
});
const out = (
  table: PopularityRow[] = [],
  late: LatePurchase[] = [],
  heartbeat: PopularityRow[] = [],
) => ({ table, heartbeat, late });

function setup(heartbeat = false) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext({ horizonMs: WEEK, heartbeat }, ts);
  return { ts, logic: createStageLogic(popularityStage, ctx), batch: batchMaker<ParsedRecord>() };
}

describe("popularity stage (marbles)", () => {
  it("should emit a row per item whose purchases changed, none for other events or no change", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c", {
        a: batch(T0, [ev(T0, "p1", "purchase", { pr: 10 }), ev(T0, "p1", "purchase", { pr: 20 })]),
        b: batch(T0 + MINUTE, [ev(T0, "p1", "view"), ev(T0, "p2", "rating", { r: 5 })]),
        c: batch(T0 + DAY, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", {
        a: out([row("p1", 2, T0, 15)]),
        b: out(),
        c: out(),
      });
    });
  });

  it("should skip records at or below the batch's `from` position: seen before a restart", () => {
    const { ts, logic, batch } = setup();
    const old = ev(T0, "p1");
    const fresh = ev(T0, "p1");
    ts.run(({ cold, expectObservable }) => {
      // Replayed batch: the host says everything up to old.s was processed already.
      const input = cold("a", { a: batch(T0, [old, fresh], old.s) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: out([row("p1", 1, T0)]) });
    });
  });

  it("should send a purchase beyond the horizon to the late port with its watermark, never to the table", () => {
    const { ts, logic, batch } = setup();
    const wb = T0 + 10 * DAY;
    const tooOld = ev(wb - WEEK - 1, "p1", "purchase", { wb });
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(wb, [tooOld, ev(wb - WEEK, "p2", "purchase", { wb })]) });
      expectObservable(input.pipe(logic.operator)).toBe("a", {
        a: out([row("p2", 1, wb)], [{ watermark: wb - WEEK, event: tooOld }]),
      });
    });
  });

  it("should lower a row as hourly buckets leave the 7-day horizon on idle progress", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 1s b 1s c 1s d", {
        a: batch(T0 + 2 * HOUR, [ev(T0 + 10 * MINUTE, "p1"), ev(T0 + 2 * HOUR, "p1")]),
        b: batch(T0 + HOUR + WEEK - 1, []),
        c: batch(T0 + HOUR + WEEK, []),
        d: batch(T0 + 3 * HOUR + WEEK, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a 1s b 1s c 1s d", {
        a: out([row("p1", 2, T0 + 2 * HOUR)]),
        b: out(),
        c: out([row("p1", 1, T0 + HOUR + WEEK)]),
        d: out([row("p1", 0, T0 + 3 * HOUR + WEEK)]), // purchases 0: the item leaves the table
      });
    });
    expect(logic.view.row("p1")).toBeUndefined();
  });

  it("should beat the heartbeat only when progress moves, if asked to", () => {
    const { ts, logic, batch } = setup(true);
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c-d", {
        a: batch(T0, []),
        b: batch(T0, []),
        c: batch(T0 + HOUR, []),
        d: batch(T0 + MINUTE, []), // an older progress: the host keeps T0 + 1h
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c-d", {
        a: out([], [], [heartbeatRow(T0)]),
        b: out(),
        c: out([], [], [heartbeatRow(T0 + HOUR)]),
        d: out(),
      });
    });
  });
});
