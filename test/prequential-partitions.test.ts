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
import {
  covisitStage,
  historyStage,
  type CovisitView,
  type HistoryView,
} from "../actors/stages/index.js";
import type { StageHandler, StageSpec } from "../actors/host/index.js";
import { partitionOf } from "../actors/contract/index.js";
import { qualityWiring, recommenderWiring } from "../actors/plan/index.js";
import type { PrequentialReport } from "../actors/quality/index.js";
import { itemWideView, scorerServe, type ItemWideView } from "../actors/serving/index.js";
import { createHistory, MOVIES, type CollaborativeServing } from "../actors/sources/index.js";
import { startStage } from "../runtime/index.js";
import { createStageState } from "../state/index.js";

/**
 * Online quality runs in every partition's history stage (no stage of its own, no copy of any
 * source): the figures the engine reports merge the partitions' tallies, and must be those of
 * one scorer over every case.
 */
const N = 4000;
let events: LogEvent[] = [];
let frozen: ReturnType<typeof frozenServing>;

beforeAll(async () => {
  events = await movieLensHead(N);
  frozen = frozenServing(events);
});

/** A history stage with the scorer, fed the records of users in `partition` of `of`. */
function partitionRun(partition: number, of: number) {
  const run = startStage(
    historyStage,
    {
      name: "history",
      state: createStageState(),
      settings: {
        preset: MOVIES,
        halfLifeMs: movieSources.historyHalfLifeMs,
        maxItemsPerUser: movieSources.maxItemsPerUser,
        scorer: { ...movieScoring, sample: 0.5, serve: frozen.serve, design: frozen.design },
      },
      scheduler: asyncScheduler,
      count: () => undefined,
    },
    () => undefined,
  );
  run.restoreAll();
  const recs = recordsOf(events, 0, N).filter((r) => partitionOf(r.u, of) === partition);
  pushUneven(run, recs);
  return run.view as HistoryView;
}

/** The quality wiring over these history views, as the pipeline reads them. */
function wiringOver(views: HistoryView[]) {
  const live = (id: string) => {
    const [stage, p] = id.split("/");
    return stage === "history" ? (views[Number(p)] as unknown as StageHandler) : undefined;
  };
  return qualityWiring(
    {
      partitions: views.length,
      preset: "movies",
      ranker: "blend",
      arms: [
        { name: "design", share: 50, ranker: "design" },
        { name: "blend", share: 50, ranker: "blend" },
      ],
      qualitySample: 0.5,
    },
    { stream: "S", run: () => undefined, live },
  );
}

describe("online quality across partitions", () => {
  it("merges the partitions' tallies into the figures of one scorer over every case", () => {
    const one = wiringOver([partitionRun(0, 1)]).prequential()!;
    const three = wiringOver([0, 1, 2].map((p) => partitionRun(p, 3))).prequential()!;
    expect(one.report.all.blend!.cases).toBeGreaterThan(500);
    for (const p of [0, 1, 2]) {
      // Each partition scored some of the cases: the merge is not one partition's figures.
      const v = partitionRun(p, 3).prequential()!.report().all.blend!;
      expect(v.cases).toBeGreaterThan(0);
      expect(v.cases).toBeLessThan(one.report.all.blend!.cases);
    }
    expect(three.methods).toEqual(one.methods);
    // NDCG is a float sum, added in another order: equal to the last few bits.
    const rounded = (r: PrequentialReport) =>
      JSON.stringify(r, (k, v: unknown) => (k === "ndcg" ? (v as number).toFixed(12) : v));
    expect(rounded(three.report)).toBe(rounded(one.report));
  }, 120_000);

  it("runs in the history stages: no stage of its own, with the blend or with arms alone", () => {
    for (const cfg of [
      { ranker: "blend" as const },
      { ranker: "design" as const, arms: [{ name: "a", share: 100, ranker: "design" as const }] },
    ]) {
      const specs: StageSpec<StageHandler>[] = [];
      const run = (s: StageSpec<StageHandler>) => void specs.push(s);
      const q = qualityWiring(
        { partitions: 2, preset: "movies", ...cfg },
        { stream: "S", run, live: () => undefined },
      );
      expect(q.scorer?.().preset).toBe(MOVIES);
      recommenderWiring(
        { partitions: 2, preset: "movies", idleTimeoutMs: 0, ...cfg },
        { stream: "S", run, live: () => undefined, ...(q.scorer ? { scorer: q.scorer } : {}) },
      );
      expect(specs.map((s) => `${s.stage}/${s.partition}`).sort()).toEqual([
        "collaborative-trainer/0",
        "collaborative/0",
        "collaborative/1",
        "covisit/0",
        "covisit/1",
        "drift/0",
        "drift/1",
        "history/0",
        "history/1",
      ]);
    }
    // QUALITY=off: no scorer, and with RANKER=design no source stage either.
    const off = qualityWiring(
      { partitions: 2, preset: "movies", ranker: "design", quality: false },
      { stream: "S", run: () => undefined, live: () => undefined },
    );
    expect(off.scorer).toBeUndefined();
  });
});

describe("the scorer's read of the serving path", () => {
  /** A covisit stage's view over an empty state, and a collaborative stand-in at EVENTS seq `at`. */
  const parts = (at: number) => {
    const covisit = startStage(
      covisitStage,
      {
        name: "covisit",
        state: createStageState(),
        settings: { preset: MOVIES, sources: movieSources, partition: 0, partitions: 1 },
        scheduler: asyncScheduler,
        count: () => undefined,
      },
      () => undefined,
    );
    covisit.restoreAll();
    let asked = 0;
    const source = {
      model: () => ({ model: {}, at: 0 }),
      candidates: () => {
        asked++;
        return [{ item: "m1", score: 1, why: "" }];
      },
    } as unknown as CollaborativeServing;
    const collaborative = { view: { collaborative: () => source }, seq: at };
    const wide = itemWideView([covisit.view as CovisitView], {
      preset: MOVIES,
      ...movieSources.covisit,
    });
    return { covisit: wide, collaborative, asked: () => asked };
  };

  it("reads only sources that have not taken the case's event: covisit at all, COLLABORATIVE alone", () => {
    const history = createHistory({ preset: MOVIES });
    const behind = parts(41);
    const a = scorerServe(
      () => behind.covisit,
      () => behind.collaborative,
      movieSources,
    )("u1", history, 42)!;
    expect(a.collaborative).toBe(true);
    expect(a.reads.lists("u1", 0, 10).COLLABORATIVE?.map((x) => x.item)).toEqual(["m1"]);
    const past = parts(42); // it has taken record 42: the user's row holds the case
    const b = scorerServe(
      () => past.covisit,
      () => past.collaborative,
      movieSources,
    )("u1", history, 42)!;
    expect(b.collaborative).toBe(false);
    expect(b.reads.lists("u1", 0, 10).COLLABORATIVE).toBeUndefined();
    expect(past.asked()).toBe(0);
    // Covisit has taken the case's event (the scored pair and count are in it): no read.
    const c = behind.covisit;
    const taken: ItemWideView = { ...c, seq: () => 42 };
    expect(
      scorerServe(
        () => taken,
        () => behind.collaborative,
        movieSources,
      )("u1", history, 42),
    ).toBe(undefined);
    expect(
      scorerServe(
        (): ItemWideView => ({ ...c, seq: () => 41 }),
        () => undefined,
        movieSources,
      )("u1", history, 42),
    ).toBeDefined();
    // Without covisit here, serving cannot answer: no read.
    expect(
      scorerServe(
        () => undefined,
        () => undefined,
        movieSources,
      )("u1", history, 1),
    ).toBe(undefined);
  });
});
