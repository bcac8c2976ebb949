import { asyncScheduler } from "rxjs";
import { beforeAll, describe, expect, it } from "vitest";
import type { LogEvent } from "../bin/eval/log.js";
import {
  movieLensHead,
  movieScoring,
  movieSources,
  pushUneven,
  recordsOf,
  reloadThroughJson,
} from "./helpers/movielens-head.js";
import { differenceInterval, wilson, type PrequentialReport } from "../actors/quality/index.js";
import { prequentialStage, sampled, type PrequentialView } from "../actors/stages/index.js";
import { blend, MOVIES, createRecommender } from "../actors/sources/index.js";
import type { CollaborativeSource } from "../actors/sources/index.js";
import { startStage } from "../runtime/index.js";
import { createStageState, type StageStateInternal } from "../state/index.js";

/**
 * The prequential stage scores each target event (a rating of 4+) against what
 * the rankers answered just before it. Checked on the first events of MovieLens (ml-latest-small)
 * against a plain loop over the pure sources (what `reco eval` drives), and across a restart
 * from a snapshot (state through JSON, as LevelDB holds it) against a run without one.
 */
const N = 4000;
let events: LogEvent[] = [];
const sources = movieSources;
const settings = movieScoring;

beforeAll(async () => {
  events = await movieLensHead(N);
});

const records = (from: number, to: number) => recordsOf(events, from, to);

/** Runs the stage over events [from, to) in batches of uneven sizes. */
function drive(state: StageStateInternal, from: number, to: number, share = 1): PrequentialView {
  const run = startStage(
    prequentialStage,
    {
      name: "prequential",
      state,
      settings: { ...settings, sample: share },
      scheduler: asyncScheduler,
      count: () => undefined,
    },
    () => undefined,
  );
  run.restoreAll();
  pushUneven(run, records(from, to));
  return run.view;
}

/** The state as a restart loads it. */
const reload = reloadThroughJson;

/** The reference: the pure sources fed one event at a time, asked before each sampled target. */
function reference(share: number) {
  const rec = createRecommender(MOVIES, sources);
  let now = -1;
  const ref = { cases: 0, blend: 0, popularity: 0, SIMILAR_ITEMS: 0, ndcg: 0 };
  for (const e of events) {
    if (MOVIES.isTarget(e) && sampled(e.u, share)) {
      ref.cases++;
      const lists = rec.lists(e.u, now, 100);
      const touched = new Set(rec.recent(e.u, 1000).map((x) => x.item));
      const top = blend(lists, settings.blend, {
        n: 10,
        exclude: rec.done(e.u, now),
        ...(touched.size > 0 ? { touched } : {}),
      }).map((x) => x.item);
      const at = top.indexOf(e.i);
      if (at >= 0) {
        ref.blend++;
        ref.ndcg += 1 / Math.log2(at + 2);
      }
      // A source alone as served: its best 10 without the user's done items.
      const done = rec.done(e.u, now);
      const best = (l: readonly { item: string }[] | undefined) =>
        (l ?? []).filter((x) => !done.has(x.item)).slice(0, 10);
      if (best(lists.POPULAR_FALLBACK).some((x) => x.item === e.i)) ref.popularity++;
      if (best(lists.SIMILAR_ITEMS).some((x) => x.item === e.i)) ref.SIMILAR_ITEMS++;
    }
    rec.add(e);
    now = Math.max(now, e.ts);
  }
  return ref;
}

describe("prequential stage on MovieLens", () => {
  let full: PrequentialReport;

  it("scores every rating of 4+ against the blend and sources of just before it, as a plain loop over the sources does", () => {
    full = drive(createStageState(), 0, N).report();
    const ref = reference(1);
    const all = full.all;
    expect(ref.cases).toBeGreaterThan(1000);
    expect(all.blend!.cases).toBe(ref.cases);
    expect(all.blend!.hits).toBe(ref.blend);
    expect(all.blend!.ndcg).toBeCloseTo(ref.ndcg / ref.cases, 12);
    expect(all.popularity!.hits).toBe(ref.popularity);
    expect(all.SIMILAR_ITEMS!.hits).toBe(ref.SIMILAR_ITEMS);
    expect(all.blend!.hits).toBeGreaterThan(all.popularity!.hits);
    // No model here: COLLABORATIVE lists nothing and hits nothing.
    expect(all.COLLABORATIVE!.hits).toBe(0);
    // Every case is in one arm; the blend arm's hits are the blend's on its users.
    expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBe(ref.cases);
    expect(all["arm:blend"]!.hits).toBeLessThanOrEqual(all.blend!.hits);
    expect(all["arm:design"]!.hits).toBeLessThanOrEqual(all.design!.hits);
    expect(all.blend!.coverage).toBeGreaterThan(0);
  }, 120_000);

  it("counts the same after a restart from a snapshot as without one", () => {
    const state = createStageState();
    drive(state, 0, 1700);
    const after = drive(reload(state), 1700, N).report();
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
    expect(all.blend!.ndcg).toBeCloseTo(ref.ndcg / ref.cases, 12);
    expect(all.popularity!.hits).toBe(ref.popularity);
    expect(all.SIMILAR_ITEMS!.hits).toBe(ref.SIMILAR_ITEMS);
    expect(all["arm:design"]!.cases + all["arm:blend"]!.cases).toBe(ref.cases);
    // A sample is a sample: its hit rate is near the whole's (12 of 68 users here: 0.28 against
    // 0.33; a sample of users varies more than one of events).
    expect(Math.abs(all.blend!.hitRate - full.all.blend!.hitRate)).toBeLessThan(0.1);
    const state = createStageState();
    drive(state, 0, 2300, share);
    expect(drive(reload(state), 2300, N, share).report()).toEqual(sampledRun);
  }, 120_000);
});

describe("prequential COLLABORATIVE and the collaborative stage's position", () => {
  it("asks COLLABORATIVE only while the collaborative stage is not past the case", () => {
    // A stand-in source that lists every case's own item first: a hit whenever it is asked.
    const target = new Map(events.filter((e) => MOVIES.isTarget(e)).map((e) => [e.u, e.i]));
    let asked = 0;
    const collaborative = {
      model: () => ({ model: {}, at: 0 }),
      candidates: (user: string) => {
        asked++;
        return [{ item: target.get(user) ?? "", score: 1, why: "" }];
      },
    } as unknown as CollaborativeSource;
    const run = (fedBy: (x: number) => number) => {
      let x = 0;
      const stage = startStage(
        prequentialStage,
        {
          name: "prequential",
          state: createStageState(),
          settings: {
            ...settings,
            collaborative: () => collaborative,
            collaborativeFed: () => fedBy(x),
          },
          scheduler: asyncScheduler,
          count: () => undefined,
        },
        () => undefined,
      );
      stage.restoreAll();
      for (const r of records(0, 600)) {
        x = r.s - 1; // the collaborative stage has fed exactly the records before this one
        stage.push({
          records: [r],
          position: { from: r.s - 1, upTo: r.s },
          progress: { from: -1, to: -1 },
        });
      }
      return stage.view.report().all;
    };
    const level = run((x) => x);
    expect(level.COLLABORATIVE!.cases).toBe(level.blend!.cases);
    expect(level.COLLABORATIVE!.hits).toBeGreaterThan(0);
    asked = 0;
    const ahead = run((x) => x + 1); // one record further: it holds the scored event already
    expect(ahead.COLLABORATIVE!.cases).toBe(0);
    expect(asked).toBe(0);
    expect(ahead.blend!.cases).toBe(level.blend!.cases);
  });
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
