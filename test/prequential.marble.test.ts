import { describe, expect, it } from "vitest";
import { TestScheduler } from "rxjs/testing";
import { createStageLogic } from "../runtime/index.js";
import { historyStage, type HistoryView, type ServeFn } from "../actors/stages/index.js";
import {
  createCovisit,
  createPopular,
  createTrending,
  defaultBlend,
  defaultSourceSettings,
  ECOMMERCE,
  readsOf,
} from "../actors/sources/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { batchMaker, stageContext } from "./helpers/stage.js";
import { recordMaker } from "./helpers/source-stages.js";

const T0 = Date.UTC(2026, 10, 1);
const M = 60_000;

/** The history stage with the scorer; the item-wide sources it reads stay empty. */
function setup() {
  const ts = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  const sources = defaultSourceSettings(ECOMMERCE);
  const item = {
    covisit: createCovisit({ preset: ECOMMERCE }),
    trending: createTrending({}),
    popular: createPopular(ECOMMERCE.isTarget),
  };
  const serve: ServeFn = (user, history) => {
    const t = history.touched(user);
    return {
      reads: readsOf({ history, ...item }, sources),
      now: T0 + 10 * M,
      touched: t.size > 0 ? t : undefined,
      collaborative: false,
    };
  };
  const settings = {
    preset: ECOMMERCE,
    halfLifeMs: sources.historyHalfLifeMs,
    maxItemsPerUser: sources.maxItemsPerUser,
    scorer: { preset: ECOMMERCE, blend: defaultBlend(ECOMMERCE), serve },
  };
  const { ctx } = stageContext(settings, ts);
  const logic = createStageLogic(historyStage, ctx);
  const view = (logic.view as HistoryView).prequential()!;
  return { ts, logic, view, batch: batchMaker<ParsedRecord>() };
}

describe("prequential scorer in the history stage (marbles)", () => {
  it("should score a target event against the history of just before it, and move progress on idle batches", () => {
    const { ts, logic, view, batch } = setup();
    const rec = recordMaker();
    const a = [rec("u1", "p1", T0), rec("u2", "p2", T0 + M)];
    // u1 buys p1, which they viewed: HISTORY lists it; nothing was bought before, so
    // popularity lists nothing. u2 buys p9, which nobody had touched: a miss everywhere.
    const b = [rec("u1", "p1", T0 + 2 * M, "purchase"), rec("u2", "p9", T0 + 3 * M, "purchase")];
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a-b-c", {
        a: batch(T0 + M, a),
        b: batch(T0 + 3 * M, b),
        // Progress without records (an idle marker).
        c: batch(T0 + 9 * M, []),
      });
      expectObservable(input.pipe(logic.operator)).toBe("a-b-c", { a: {}, b: {}, c: {} });
    });
    const all = view.report().all;
    expect(all.HISTORY).toMatchObject({ cases: 2, hits: 1 });
    expect(all.blend).toMatchObject({ cases: 2, hits: 1 });
    expect(all.popularity).toMatchObject({ cases: 2, hits: 0 });
    expect(view.progress()).toBe(T0 + 9 * M);
  });

  it("should score nothing for events that are not targets", () => {
    const { ts, logic, view, batch } = setup();
    const rec = recordMaker();
    ts.run(({ cold, expectObservable }) => {
      const input = cold("a", { a: batch(T0, [rec("u1", "p1", T0), rec("u1", "p2", T0)]) });
      expectObservable(input.pipe(logic.operator)).toBe("a", { a: {} });
    });
    expect(view.report().all.blend?.cases ?? 0).toBe(0);
  });
});
