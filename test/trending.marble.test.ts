import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic, withProcessingTime } from "../runtime/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { trendingStage, type TrendingPart, type TrendingView } from "../actors/stages/index.js";
import type { LateRecord } from "../actors/stages/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0); // an hour boundary
const DAY = 24 * HOUR;

let seq = 0;
/** A record at event time `ts`, parse's progress before it `wb`. */
function ev(ts: number, i: string, t: EventType = "view", wb = -1): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u: "u1", i, c: "", b: "", pr: -1, r: -1, s: seq, wb };
}
const part = (
  kind: "1h" | "24h",
  start: number,
  items: TrendingPart["items"],
  wm: number,
  final = false,
): TrendingPart => ({ kind, start, end: start + (kind === "1h" ? HOUR : DAY), items, final, wm });

function setup() {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const settings = {
    partition: 3,
    oneHourOutOfOrdernessMs: 2 * HOUR,
    oneDayOutOfOrdernessMs: 26 * HOUR,
    weights: { view: 1, click: 2 },
    topK: 10,
  };
  const { ctx } = stageContext(settings, ts);
  const logic = createStageLogic(trendingStage, ctx);
  return { ts, logic, view: logic.view as TrendingView, batch: batchMaker<ParsedRecord>() };
}

describe("trending stage (marbles)", () => {
  it("should emit the newest lists and a heartbeat on the processing-time trigger, while input is idle", () => {
    const { ts, logic, batch } = setup();
    const wm = T0 + 10 * MINUTE;
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", {
        a: batch(wm, [ev(T0 + 5 * MINUTE, "p1"), ev(T0 + 6 * MINUTE, "p2", "click")]),
      });
      const items: TrendingPart["items"] = [
        ["p2", 2, 0, 1, 0, 0],
        ["p1", 1, 1, 0, 0, 0],
      ];
      // Triggers every second of virtual time; no input after `a`.
      expectObservable(withProcessingTime(input, 1000, ts).pipe(logic.operator), "^ 2500ms !").toBe(
        "a 999ms t 999ms u",
        {
          a: { late: [], parts: [] },
          t: {
            parts: [part("1h", T0, items, wm), part("24h", T0 + HOUR - DAY, items, wm)],
            heartbeat: [{ q: 3, wm }],
          },
          // Nothing changed and progress did not move: no list, no heartbeat.
          u: { parts: [] },
        },
      );
    });
  });

  it("should emit final lists when progress closes a window: 1 h at its end + 2 h, 24 h at its end + 26 h, on idle batches", () => {
    const { ts, logic, batch } = setup();
    const items: TrendingPart["items"] = [["p1", 1, 1, 0, 0, 0]];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c-d", {
        a: batch(T0 + 5 * MINUTE, [ev(T0 + 5 * MINUTE, "p1")]),
        // Idle partition: batches without records that only move progress.
        b: batch(T0 + 3 * HOUR - 1, []),
        c: batch(T0 + 3 * HOUR, []),
        d: batch(T0 + DAY + 3 * HOUR, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c-d", {
        a: { late: [], parts: [] },
        b: { late: [], parts: [] },
        c: { late: [], parts: [part("1h", T0, items, T0 + 3 * HOUR, true)] },
        // The 24 h windows ending at T0 + 1 h .. T0 + 1 d hold the hour; only the first closed.
        d: {
          late: [],
          parts: [part("24h", T0 + HOUR - DAY, items, T0 + DAY + 3 * HOUR, true)],
        },
      });
    });
  });

  it("should send a record behind a kind's watermark to late for that kind only", () => {
    const { ts, logic, view, batch } = setup();
    const wb = T0 + 3 * HOUR;
    const r = ev(T0, "p1", "view", wb);
    const late: LateRecord = {
      stage: "trending",
      reason: "behind_watermark:1h",
      watermark: wb - 2 * HOUR,
      event: r,
    };
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(wb, [r]) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: { late: [late], parts: [] } });
    });
    // Not late for the 24 h windows (26 h): counted there.
    expect(view.part("24h", T0 + HOUR - DAY).items).toEqual([["p1", 1, 1, 0, 0, 0]]);
    expect(view.part("1h", T0).items).toEqual([]);
  });

  it("should skip records at or below the batch's `from` position: seen before a restart", () => {
    const { ts, logic, view, batch } = setup();
    const a = [ev(T0, "p1"), ev(T0, "p1")];
    const again = [...a, ev(T0, "p2")];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", {
        a: batch(T0, a),
        // Redelivered after a restart of parse, with one new record: position from = a's last.
        b: batch(T0, again, a[1]!.s),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b", {
        a: { late: [], parts: [] },
        // Progress did not move: nothing to close.
        b: { late: [] },
      });
    });
    expect(view.part("1h", T0).items).toEqual([
      ["p1", 2, 2, 0, 0, 0],
      ["p2", 1, 1, 0, 0, 0],
    ]);
  });
});
