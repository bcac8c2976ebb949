import { describe, it, expect } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { createStageState } from "../state/store.js";
import type { EventType } from "../actors/contract/index.js";
import type { WindowOutput, WindowRecord } from "../actors/stages/index.js";
import { interestStage, type ProfileRecord } from "../actors/stages/index.js";
import { DAY, MINUTE } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";

const T0 = Date.UTC(2024, 0, 1, 10, 0, 0);
const W = 5 * MINUTE;

function cell(w: number, u: string, i: string, c: string, n: number, t: EventType = "view") {
  return { w, u, i, t, n, c, b: "", pr: -1 } satisfies WindowRecord;
}
const profiles = (...p: ProfileRecord[]) => ({ profiles: p });

function setup(state = createStageState()) {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const settings = { horizonMs: DAY, windowMs: W, topCategories: 3 };
  const { ctx } = stageContext(settings, ts, state);
  const logic = createStageLogic(interestStage, ctx);
  while (logic.restore?.next().done === false);
  return { ts, state, logic, batch: batchMaker<WindowOutput>() };
}

describe("interest-ranking stage (marbles)", () => {
  it("should treat window results as upserts and emit a profile only when it changes", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c-d", {
        a: batch(T0, [cell(T0, "u1", "b1", "books", 2), cell(T0, "u1", "t1", "toys", 1)]),
        // The same cell with a higher count replaces it: books 3, not 2 + 3.
        b: batch(T0, [cell(T0, "u1", "b1", "books", 3)]),
        // An update that changes nothing, and a close marker: no profile.
        c: batch(T0 + MINUTE, [cell(T0, "u1", "t1", "toys", 1), { close: T0 }]),
        d: batch(T0 + MINUTE, [cell(T0, "u2", "p9", "garden", 1, "purchase")]),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c-d", {
        a: profiles({
          u: "u1",
          top: [
            ["books", 2],
            ["toys", 1],
          ],
          pur: [],
          wm: T0,
        }),
        b: profiles({
          u: "u1",
          top: [
            ["books", 3],
            ["toys", 1],
          ],
          pur: [],
          wm: T0,
        }),
        c: profiles(),
        d: profiles({ u: "u2", top: [["garden", 1]], pur: [["p9", T0 + W]], wm: T0 + MINUTE }),
      });
    });
    expect(logic.view.profile("u1")?.top[0]).toEqual(["books", 3]);
  });

  it("should re-emit profiles as windows leave the 24 h horizon on idle progress, down to empty", () => {
    const { ts, logic, batch } = setup();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a 60m b 60m c 60m d", {
        a: batch(T0 + W, [
          cell(T0, "u1", "b1", "books", 2),
          cell(T0 + W, "u1", "e1", "electronics", 1),
        ]),
        b: batch(T0 + W + DAY - 1, []),
        c: batch(T0 + W + DAY, []), // window T0 ends at T0 + 5m = progress − 24 h: it leaves
        d: batch(T0 + 2 * W + DAY, []), // and the last one
      });
      expectObservable(input.pipe(logic.operator)).toBe("a 60m b 60m c 60m d", {
        a: profiles({
          u: "u1",
          top: [
            ["books", 2],
            ["electronics", 1],
          ],
          pur: [],
          wm: T0 + W,
        }),
        b: profiles(),
        c: profiles({ u: "u1", top: [["electronics", 1]], pur: [], wm: T0 + W + DAY }),
        d: profiles({ u: "u1", top: [], pur: [], wm: T0 + 2 * W + DAY }),
      });
    });
    expect(logic.view.profile("u1")).toBeUndefined();
  });

  it("should rebuild its aggregates from the state on restore: an update after a restart is not double counted", () => {
    const first = setup();
    first.ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: first.batch(T0, [cell(T0, "u1", "b1", "books", 2)]) });
      expectObservable(input.pipe(first.logic.operator)).toBe("a", {
        a: profiles({ u: "u1", top: [["books", 2]], pur: [], wm: T0 }),
      });
    });
    const second = setup(first.state);
    expect(second.logic.view.profile("u1")?.top).toEqual([["books", 2]]);
    second.ts.run(({ cold, expectObservable }) => {
      const input = cold("a", {
        a: second.batch(T0, [cell(T0, "u1", "b1", "books", 4), cell(T0, "u1", "x", "toys", 3)]),
      });
      expectObservable(input.pipe(second.logic.operator)).toBe("a", {
        a: profiles({
          u: "u1",
          top: [
            ["books", 4],
            ["toys", 3],
          ],
          pur: [],
          wm: T0,
        }),
      });
    });
  });

  it("keeps no map of sent profiles: a snapshot of the earlier layout has its profiles deleted on load", () => {
    const first = setup();
    first.ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: first.batch(T0, [cell(T0, "u1", "b1", "books", 2)]) });
      expectObservable(input.pipe(first.logic.operator)).toBe("a", {
        a: profiles({ u: "u1", top: [["books", 2]], pur: [], wm: T0 }),
      });
    });
    expect(first.state.map("profile").size).toBe(0);
    // The earlier layout kept each sent profile (~130 B per user, as popularity-join does).
    first.state.takeDelta();
    const sent = { u: "u1", top: [["books", 2]], pur: [], wm: T0 };
    first.state.loadMapEntry("profile", "u1", JSON.stringify(sent));
    const second = setup(first.state);
    expect(second.state.map("profile").size).toBe(0);
    expect(second.state.takeDelta().maps).toEqual([["profile", [], ["u1"]]]);
    // The user's profile is as the cells give it: an unchanged count sends nothing.
    second.ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b", {
        a: second.batch(T0, [cell(T0, "u1", "b1", "books", 2)]),
        b: second.batch(T0, [cell(T0, "u1", "b1", "books", 5)]),
      });
      expectObservable(input.pipe(second.logic.operator)).toBe("a-b", {
        a: profiles(),
        b: profiles({ u: "u1", top: [["books", 5]], pur: [], wm: T0 }),
      });
    });
  });
});
