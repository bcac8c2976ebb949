import { asyncScheduler } from "rxjs";
import { beforeAll, describe, expect, it } from "vitest";
import type { LogEvent } from "../bin/eval/log.js";
import {
  frozenServing,
  movieLensHead,
  movieScoring,
  movieSources,
  pushUneven,
  recordsOf,
} from "./helpers/movielens-head.js";
import { reloaded } from "./helpers/source-stages.js";
import { differenceInterval, wilson, type PrequentialReport } from "../actors/quality/index.js";
import {
  historyStage,
  sampled,
  type HistoryView,
  type PrequentialSettings,
  type ServeFn,
} from "../actors/stages/index.js";
import { createDesignDriver, DESIGN_DEFAULTS } from "../actors/plan/index.js";
import { designBefore } from "../actors/serving/index.js";
import {
  blend,
  createHistory,
  MOVIES,
  readsOf,
  sourceEventOf,
  type HistorySource,
} from "../actors/sources/index.js";
import { startStage } from "../runtime/index.js";
import { createStageState, type StageStateInternal } from "../state/index.js";

/**
 * The prequential scorer runs in the history stage of each partition and scores each target
 * event (a rating of 4+) against what the serving path reads just before the stage takes it: the
 * stage's own history (exactly at the case) with the item-wide sources as they are then. Checked
 * on the first events of MovieLens (ml-latest-small) with item-wide sources held still (so that
 * the answers are a function of the history alone) against a plain loop over the pure sources,
 * and across a restart from a snapshot against a run without one.
 */
const N = 4000;
let events: LogEvent[] = [];
const sources = movieSources;
/** The item-wide sources and the design ranking, fed the whole head once and then held still. */
let frozen: ReturnType<typeof frozenServing>;

beforeAll(async () => {
  events = await movieLensHead(N);
  frozen = frozenServing(events);
});

const records = (from: number, to: number) => recordsOf(events, from, to);

/** Runs the history stage with the scorer over events [from, to) in batches of uneven sizes. */
function drive(
  state: StageStateInternal,
  from: number,
  to: number,
  share = 1,
  how?: ServeFn,
  design: NonNullable<PrequentialSettings["design"]> = frozen.design,
) {
  const run = startStage(
    historyStage,
    {
      name: "history",
      state,
      settings: {
        preset: MOVIES,
        halfLifeMs: sources.historyHalfLifeMs,
        maxItemsPerUser: sources.maxItemsPerUser,
        scorer: {
          ...movieScoring,
          sample: share,
          serve: how ?? frozen.serve,
          design,
        },
      },
      scheduler: asyncScheduler,
      count: () => undefined,
    },
    () => undefined,
  );
  run.restoreAll();
  pushUneven(run, records(from, to));
  return (run.view as HistoryView).prequential()!;
}

/** The reference: a history fed one event at a time, asked before each sampled target. */
function reference(share: number) {
  const history: HistorySource = createHistory({
    preset: MOVIES,
    halfLifeMs: sources.historyHalfLifeMs,
    maxItemsPerUser: sources.maxItemsPerUser,
  });
  const { item, now, design } = frozen;
  const reads = readsOf({ history, ...item }, sources);
  const ref = {
    cases: 0,
    blend: 0,
    popularity: 0,
    SIMILAR_ITEMS: 0,
    HISTORY: 0,
    design: 0,
    ndcg: 0,
  };
  for (const r of records(0, N)) {
    const e = sourceEventOf(r, MOVIES);
    if (MOVIES.isTarget(e) && sampled(e.u, share)) {
      ref.cases++;
      // As serving reads them: the done items take no place in a list.
      const done = reads.done(e.u, now);
      const lists = reads.lists(e.u, now, 100, done);
      const touched = history.touched(e.u);
      const top = blend(lists, movieScoring.blend, {
        n: 10,
        exclude: done,
        ...(touched.size > 0 ? { touched } : {}),
      }).map((x) => x.item);
      const at = top.indexOf(e.i);
      if (at >= 0) {
        ref.blend++;
        ref.ndcg += 1 / Math.log2(at + 2);
      }
      // A source alone as served: its best 10 without the user's done items.
      const best = (l: readonly { item: string }[] | undefined) =>
        (l ?? []).filter((x) => !done.has(x.item)).slice(0, 10);
      if (best(lists.POPULAR_FALLBACK).some((x) => x.item === e.i)) ref.popularity++;
      if (best(lists.SIMILAR_ITEMS).some((x) => x.item === e.i)) ref.SIMILAR_ITEMS++;
      if (best(lists.HISTORY).some((x) => x.item === e.i)) ref.HISTORY++;
      if (design(e.u, 10).includes(e.i)) ref.design++;
    }
    history.add(e);
  }
  return ref;
}

describe("prequential scorer in the history stage, on MovieLens", () => {
  let full: PrequentialReport;

  it("scores every rating of 4+ against the serving path's reads of just before it, as a plain loop over the sources does", () => {
    full = drive(createStageState(), 0, N).report();
    const ref = reference(1);
    const all = full.all;
    expect(ref.cases).toBeGreaterThan(1000);
    expect(all.blend!.cases).toBe(ref.cases);
    expect(all.blend!.hits).toBe(ref.blend);
    expect(all.blend!.ndcg).toBeCloseTo(ref.ndcg / ref.cases, 12);
    expect(all.popularity!.hits).toBe(ref.popularity);
    expect(all.SIMILAR_ITEMS!.hits).toBe(ref.SIMILAR_ITEMS);
    expect(all.HISTORY!.hits).toBe(ref.HISTORY);
    expect(all.design!.hits).toBe(ref.design);
    expect(all.blend!.hits).toBeGreaterThan(all.popularity!.hits);
    // COLLABORATIVE is not in what serving read (`collaborative: false`): no case of it.
    expect(all.COLLABORATIVE!.cases).toBe(0);
    // Every case is in one arm; the blend arm's hits are the blend's on its users.
    expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBe(ref.cases);
    expect(all["arm:blend"]!.hits).toBeLessThanOrEqual(all.blend!.hits);
    expect(all["arm:design"]!.hits).toBeLessThanOrEqual(all.design!.hits);
    expect(all.blend!.coverage).toBeGreaterThan(0);
  }, 120_000);

  it("counts the same after a restart from a snapshot as without one", () => {
    const state = createStageState();
    drive(state, 0, 1700);
    const after = drive(reloaded(state), 1700, N).report();
    expect(after).toEqual(full);
  }, 120_000);

  it("with QUALITY_SAMPLE scores only the targets of users whose id hashes into the share, the same ones after a restart", () => {
    const share = 0.25;
    const sampledRun = drive(createStageState(), 0, N, share).report();
    const ref = reference(share);
    const all = sampledRun.all;
    // Some users' targets, not all, and exactly the reference's (the same users).
    const users = new Set(events.filter((e) => MOVIES.isTarget(e)).map((e) => e.u));
    const chosen = [...users].filter((u) => sampled(u, share));
    expect(chosen.length).toBeGreaterThan(0);
    expect(chosen.length).toBeLessThan(users.size);
    expect(ref.cases).toBeGreaterThan(0);
    expect(ref.cases).toBeLessThan(full.all.blend!.cases);
    expect(all.blend!.cases).toBe(ref.cases);
    expect(all.blend!.hits).toBe(ref.blend);
    expect(all.popularity!.hits).toBe(ref.popularity);
    expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBe(ref.cases);
    const state = createStageState();
    drive(state, 0, 2300, share);
    expect(drive(reloaded(state), 2300, N, share).report()).toEqual(sampledRun);
  }, 120_000);

  it("counts a case the serving path cannot answer as unscored, not as a miss", () => {
    let asked = 0;
    const sometimes: ServeFn = (user, history, seq) =>
      ++asked % 2 === 0 ? undefined : frozen.serve(user, history, seq);
    const v = drive(createStageState(), 0, 600, 1, sometimes);
    const all = v.report().all;
    expect(asked).toBeGreaterThan(10);
    expect(v.unscored()).toBe(Math.floor(asked / 2));
    expect(all.blend!.cases).toBe(asked - v.unscored());
  });

  it("scores the design ranking only on answers that do not count the case itself", () => {
    const M = 2000;
    /**
     * The design stages fed up to `ahead` events past the case the scorer asks about (they run
     * apart from the history stage and can be ahead of it under load), answering through
     * designBefore (`guarded`) or as they are; each case's answer and target, by case.
     */
    const leading = (ahead: number, guarded: boolean) => {
      const driver = createDesignDriver({ preset: "movies", ...DESIGN_DEFAULTS });
      let fed = 0;
      let at = 0;
      const asked = new Map<number, { hit: boolean; scored: boolean }>();
      const design = (user: string, n: number, e: { item: string; ts: number }) => {
        while (events[at]!.u !== user || events[at]!.i !== e.item || events[at]!.ts !== e.ts) at++;
        const to = Math.min(events.length, at + ahead);
        if (to > fed) driver.feed(events.slice(fed, to));
        fed = Math.max(fed, to);
        const list = driver.answer(user, n).items.map((x) => x.itemId);
        const answer = designBefore(
          (u, i, ts) => guarded && driver.taken(u, i, ts),
          () => list,
        )(user, n, e);
        asked.set(at, { hit: list.includes(e.item), scored: answer !== "taken" });
        return answer;
      };
      return { design, asked };
    };
    const run = (design: NonNullable<PrequentialSettings["design"]>) =>
      drive(createStageState(), 0, M, 1, undefined, design);
    // The design stages exactly at each case: the answers of just before it.
    const exact = leading(0, false);
    const truth = run(exact.design);
    expect(truth.unscored()).toBe(0);
    const cases = truth.report().all.design!.cases;
    // At the case, through designBefore: the design scored on all but a few ties (an earlier
    // event of the same time, which may have been the item's, is in the stages).
    const at = leading(0, true);
    const atCase = run(at.design).report().all;
    expect(atCase.design!.cases).toBeGreaterThan(cases * 0.99);
    expect(atCase.blend!.cases).toBe(cases);
    for (const ahead of [1, 3]) {
      const early = leading(ahead, false);
      run(early.design);
      // The cases whose hit the stages' being ahead changes (the case's item listed for its own
      // purchase, or left out as purchased)...
      const changed = [...early.asked].filter(([x, a]) => a.hit !== exact.asked.get(x)!.hit);
      expect(changed.length).toBeGreaterThan(10);
      // ...are each left out of the design's figures through designBefore (the other methods
      // score every case).
      const guarded = leading(ahead, true);
      const v = run(guarded.design);
      for (const [x] of changed) expect([x, guarded.asked.get(x)!.scored]).toEqual([x, false]);
      const taken = [...guarded.asked.values()].filter((a) => !a.scored).length;
      const all = v.report().all;
      expect(v.unscored()).toBe(0);
      expect(all.blend!.cases).toBe(cases);
      expect(all.design?.cases ?? 0).toBe(cases - taken);
      // The design arm's cases are its users' cases the design is scored on.
      expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBeLessThanOrEqual(cases);
      expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBeGreaterThanOrEqual(
        cases - taken,
      );
    }
  }, 120_000);
});

describe("difference of two hit rates", () => {
  it("gives Newcombe's hybrid score interval (his 1998 example: 56/70 - 48/80)", () => {
    const d = differenceInterval({ hits: 56, cases: 70 }, { hits: 48, cases: 80 });
    expect(d.difference).toBeCloseTo(0.2, 12);
    expect(d.lower).toBeCloseTo(0.0524, 3);
    expect(d.upper).toBeCloseTo(0.3339, 3);
    // Swapped: the same interval, negated.
    const e = differenceInterval({ hits: 48, cases: 80 }, { hits: 56, cases: 70 });
    expect(e.lower).toBeCloseTo(-d.upper, 12);
    expect(e.upper).toBeCloseTo(-d.lower, 12);
  });
});

describe("Wilson interval", () => {
  it("brackets the rate, stays in [0, 1] and narrows with cases", () => {
    const a = wilson(30, 100);
    expect(a.lower).toBeLessThan(0.3);
    expect(a.upper).toBeGreaterThan(0.3);
    // Known value: 30/100 at 95% -> [0.2189, 0.3958].
    expect(a.lower).toBeCloseTo(0.2189, 3);
    expect(a.upper).toBeCloseTo(0.3958, 3);
    const b = wilson(300, 1000);
    expect(b.upper - b.lower).toBeLessThan(a.upper - a.lower);
    expect(wilson(0, 10).lower).toBe(0);
    expect(wilson(10, 10).upper).toBe(1);
  });
});
