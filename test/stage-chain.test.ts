import { describe, it, expect } from "vitest";
import { asyncScheduler } from "rxjs";
import { startStage, type InputBatch, type StageContext } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import {
  windowStage,
  type WindowOutput,
  interestStage,
  type ProfileRecord,
  joinStage,
} from "../actors/stages/index.js";
import { DAY, MINUTE } from "../actors/contract/index.js";

/*
 * The user path after the watermark (window → interest-ranking → popularity-join) wired port to
 * input in memory, without a host or a server: each stage's outputs for a batch are the next
 * stage's batch, with the same progress. The seed of an in-memory driver for the stage graph.
 */

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const ctx = <S>(name: string, settings: S): StageContext<S> => ({
  name,
  state: createStageState(),
  settings,
  scheduler: asyncScheduler,
  count: () => undefined,
});

function userPath() {
  const join = startStage(joinStage, ctx("popularity-join", { purchaseExclusionMs: DAY }), () => {
    throw new Error("popularity-join has no ports");
  });
  let profiles: ProfileRecord[] = [];
  const interest = startStage(
    interestStage,
    ctx("interest-ranking", { horizonMs: DAY, windowMs: 5 * MINUTE, topCategories: 3 }),
    (o) => (profiles = [...(o.profiles ?? [])]),
  );
  interest.restoreAll();
  let windows: WindowOutput[] = [];
  const window = startStage(
    windowStage,
    ctx("window", { sizeMs: 5 * MINUTE, outOfOrdernessMs: 10 * MINUTE }),
    (o) => (windows = [...(o.window ?? [])]),
  );
  let upTo = 0;
  let progress = -1;
  /** One input batch through the three stages. */
  const push = (wm: number, records: ParsedRecord[]) => {
    const from = progress;
    progress = Math.max(progress, wm);
    upTo++;
    const at = <R>(recs: readonly R[]): InputBatch<R> => ({
      records: recs,
      position: { from: upTo - 1, upTo },
      progress: { from, to: progress },
    });
    window.push(at(records));
    interest.push(at(windows));
    join.push(at(profiles));
  };
  return { push, join };
}

let seq = 0;
function ev(ts: number, u: string, i: string, c: string, t: EventType = "view"): ParsedRecord {
  seq++;
  return { id: `id-${seq}`, t, ts, u, i, c, b: "", pr: -1, r: -1, s: seq, wb: -1 };
}

describe("window → interest-ranking → popularity-join, in memory", () => {
  it("should turn events into the profile the join serves, through update-mode window results", () => {
    const { push, join } = userPath();
    push(T0, [ev(T0, "u1", "b1", "books"), ev(T0, "u1", "b1", "books")]);
    push(T0 + MINUTE, [ev(T0 + MINUTE, "u1", "t1", "toys"), ev(T0 + MINUTE, "u1", "b2", "books")]);
    // Updates of one window key (b1: 2, then 3) are upserts down the path, never summed twice.
    push(T0 + 2 * MINUTE, [ev(T0 + 2 * MINUTE, "u1", "b1", "books", "purchase")]);
    expect(join.view.profile("u1")).toEqual({
      u: "u1",
      top: [
        ["books", 4],
        ["toys", 1],
      ],
      pur: [["b1", T0 + 5 * MINUTE]],
      wm: T0 + 2 * MINUTE,
    });
    // A day of idle progress later the windows leave the horizon: an empty profile (seen long ago).
    push(T0 + 5 * MINUTE + DAY, []);
    expect(join.view.profile("u1")).toEqual({
      u: "u1",
      top: [],
      pur: [],
      wm: T0 + 5 * MINUTE + DAY,
    });
  });
});
