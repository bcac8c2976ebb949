import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { windowStage, type WindowOutput, type WindowRecord } from "../actors/stages/index.js";
import { MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0); // a 5-minute boundary
const SIZE = 5 * MINUTE;
const OOO = 10 * MINUTE;

let seq = 0;
function ev(ts: number, u: string, i: string, t: EventType = "view"): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u, i, c: "", b: "", pr: -1, r: -1, s: seq, wb: -1 };
}
const count = (w: number, u: string, i: string, n: number): WindowRecord => ({
  w,
  u,
  i,
  t: "view",
  n,
  c: "",
  b: "",
  pr: -1,
});
const win = (...recs: WindowOutput[]) => ({ window: recs });

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const { ctx } = stageContext({ sizeMs: SIZE, outOfOrdernessMs: OOO }, ts, state);
  const logic = createStageLogic(windowStage, ctx);
  return { ts, state, logic, batch: batchMaker<ParsedRecord>() };
}

describe("window stage (marbles)", () => {
  it("should emit updates: one record per key a batch changed, with the count so far", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c", {
        a: batch(T0, [ev(T0, "u1", "p1"), ev(T0 + 1, "u1", "p1"), ev(T0 + 2, "u2", "p1")]),
        b: batch(T0 + MINUTE, [ev(T0 + MINUTE, "u1", "p1")]),
        c: batch(T0 + MINUTE, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", {
        a: win(count(T0, "u1", "p1", 2), count(T0, "u2", "p1", 1)),
        // An update of the same key: downstream upserts 3 over 2, never 2 + 3.
        b: win(count(T0, "u1", "p1", 3)),
        c: win(),
      });
    });
  });

  it("should close a window when progress − 10 min passes its end, on an idle batch too", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 5m b 5m c 5m d", {
        a: batch(T0 + MINUTE, [ev(T0, "u1", "p1"), ev(T0 + SIZE, "u1", "p1")]),
        // Idle partition: batches without records that only move progress.
        b: batch(T0 + 15 * MINUTE - 1, []),
        c: batch(T0 + 15 * MINUTE, []),
        d: batch(T0 + 30 * MINUTE, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a 5m b 5m c 5m d", {
        a: win(count(T0, "u1", "p1", 1), count(T0 + SIZE, "u1", "p1", 1)),
        b: win(),
        c: win({ close: T0 }),
        d: win({ close: T0 + SIZE }),
      });
    });
    expect(logic.view.openWindows()).toEqual(new Map());
  });

  it("should count a batch's records before closing the windows the same batch passes", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(T0 + 15 * MINUTE, [ev(T0 + MINUTE, "u1", "p1")]) });
      expectObservable(input.pipe(logic.operator)).toBe("a", {
        a: win(count(T0, "u1", "p1", 1), { close: T0 }),
      });
    });
  });

  it("should take no late record into a window already closed, and close nothing twice", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c", {
        a: batch(T0 + MINUTE, [ev(T0, "u1", "p1")]),
        b: batch(T0 + 20 * MINUTE, [ev(T0 + 20 * MINUTE, "u1", "p1")]),
        // T0's window closed at b: a record for it is behind the watermark and counts nowhere.
        c: batch(T0 + 20 * MINUTE, [ev(T0 + 1, "u1", "p1")]),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", {
        a: win(count(T0, "u1", "p1", 1)),
        b: win(count(T0 + 20 * MINUTE, "u1", "p1", 1), { close: T0 }),
        c: win(),
      });
    });
  });

  it("should go on from the state after a restart: the same counts, windows still open", () => {
    const first = setup();
    first.ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: first.batch(T0 + MINUTE, [ev(T0, "u1", "p1")]) });
      expectObservable(input.pipe(first.logic.operator)).toBe("a", {
        a: win(count(T0, "u1", "p1", 1)),
      });
    });
    const second = setup(first.state);
    expect(second.logic.view.openWindows()).toEqual(new Map([[T0, 1]]));
    second.ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: second.batch(T0 + 15 * MINUTE, [ev(T0, "u1", "p1")]) });
      expectObservable(input.pipe(second.logic.operator)).toBe("a", {
        a: win(count(T0, "u1", "p1", 2), { close: T0 }),
      });
    });
  });
});
