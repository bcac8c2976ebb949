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
  itemCountsStage,
  type CollaborativeView,
  type CovisitView,
  type HistoryView,
  type ItemCountsView,
} from "../actors/stages/index.js";
import type { StageHandler, StageSpec } from "../actors/host/index.js";
import { partitionOf, type ParsedRecord } from "../actors/contract/index.js";
import { qualityWiring, recommenderWiring } from "../actors/plan/index.js";
import type { PrequentialReport } from "../actors/quality/index.js";
import { itemWideView, scorerServe, type ItemWideView } from "../actors/serving/index.js";
import { createHistory, MOVIES, type CollaborativeSource } from "../actors/sources/index.js";
import { startStage, type StageRun } from "../runtime/index.js";
import { createStageState } from "../state/index.js";

type ItemCountsRun = StageRun<ParsedRecord, ItemCountsView>;
type CovisitRun = StageRun<ParsedRecord, CovisitView>;
const T0 = Date.UTC(2018, 0, 1);

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
        "collaborative/0",
        "covisit/0",
        "drift/0",
        "drift/1",
        "history/0",
        "history/1",
        "item-counts/0",
        "item-counts/1",
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
  /**
   * Covisit's view and two item partitions' counters over empty states, and a collaborative
   * stand-in at EVENTS seq `at`.
   */
  const parts = (at: number) => {
    const stage = <V>(def: typeof covisitStage | typeof itemCountsStage, name: string) => {
      const run = startStage(
        def as typeof covisitStage,
        {
          name,
          state: createStageState(),
          settings: { preset: MOVIES, sources: movieSources },
          scheduler: asyncScheduler,
          count: () => undefined,
        },
        () => undefined,
      );
      run.restoreAll();
      return run as unknown as V;
    };
    const runs = [0, 1].map(() => stage<ItemCountsRun>(itemCountsStage, "item-counts"));
    const counts = runs.map((r) => r.view as ItemCountsView);
    const covisit = itemWideView(
      stage<CovisitRun>(covisitStage, "covisit").view as CovisitView,
      counts,
    );
    let asked = 0;
    const source = {
      model: () => ({ model: {}, at: 0 }),
      candidates: () => {
        asked++;
        return [{ item: "m1", score: 1, why: "" }];
      },
    } as unknown as CollaborativeSource;
    const collaborative: Pick<CollaborativeView, "collaborative" | "status"> = {
      collaborative: () => source,
      status: () => ({ events: at, trainAt: 0, models: {}, seq: at }),
    };
    /** Records of movie `item` at EVENTS sequences `seqs`, fed to its partition's counters. */
    const count = (item: string, seqs: number[]) =>
      runs[partitionOf(item, 2)]!.push({
        records: seqs.map((s) => ({
          id: `e${s}`,
          t: "rating" as const,
          ts: T0 + s * 60_000,
          u: "u9",
          i: item,
          c: "",
          b: "",
          pr: -1,
          r: 5,
          s,
          wb: -1,
        })),
        position: { from: seqs[0]! - 1, upTo: seqs.at(-1)! },
        progress: { from: -1, to: -1 },
      });
    return { covisit, collaborative, asked: () => asked, count };
  };

  it("reads the case's item with its counts from before the case, when its counters already took it", () => {
    const history = createHistory({ preset: MOVIES });
    const { covisit, collaborative, count } = parts(0);
    const item = ["m1", "m2", "m3", "m4"].find((i) => partitionOf(i, 2) === 0)!;
    const other = ["m1", "m2", "m3", "m4"].find((i) => partitionOf(i, 2) === 1)!;
    count(item, [10]);
    count(other, [11, 12]);
    count(item, [13, 14]); // the case is 14, counted already
    const serve = (s: number, i: string) =>
      scorerServe(
        () => covisit,
        () => collaborative,
        movieSources,
      )("u1", history, s, i);
    const now = T0 + 20 * 60_000;
    const popular = (s: number, i: string) =>
      serve(s, i)!
        .reads.lists("u1", now, 10)
        .POPULAR_FALLBACK!.map((x) => [x.item, Math.round(x.score)]);
    // As served now: the item rated three times; just before the case, twice.
    expect(
      covisit
        .popular()
        .top(now, 10)
        .map((x) => [x.item, Math.round(x.score)]),
    ).toEqual([
      [item, 3],
      [other, 2],
    ]);
    const tied = [item, other].sort().map((i) => [i, 2]); // equal counts: by id
    expect(popular(14, item)).toEqual(tied);
    // A case the counters have not reached yet reads them as they are.
    expect(popular(15, other)).toEqual([
      [item, 3],
      [other, 2],
    ]);
    // The item's case at 13: a later rating of it (14) is counted already, so what it had before
    // 13 is no longer known: not scored.
    expect(serve(13, item)).toBe(undefined);
  });

  it("reads only sources that have not taken the case's event: covisit at all, COLLABORATIVE alone", () => {
    const history = createHistory({ preset: MOVIES });
    const behind = parts(41);
    const a = scorerServe(
      () => behind.covisit,
      () => behind.collaborative,
      movieSources,
    )("u1", history, 42, "m7")!;
    expect(a.collaborative).toBe(true);
    expect(a.reads.lists("u1", 0, 10).COLLABORATIVE?.map((x) => x.item)).toEqual(["m1"]);
    const past = parts(42); // it has taken record 42: the user's row holds the case
    const b = scorerServe(
      () => past.covisit,
      () => past.collaborative,
      movieSources,
    )("u1", history, 42, "m7")!;
    expect(b.collaborative).toBe(false);
    expect(b.reads.lists("u1", 0, 10).COLLABORATIVE).toBeUndefined();
    expect(past.asked()).toBe(0);
    const c = behind.covisit;
    const serve = (v: ItemWideView) =>
      scorerServe(
        () => v,
        () => behind.collaborative,
        movieSources,
      )("u1", history, 42, "m7");
    // Covisit has taken the case's event (the scored pair is in it): no read.
    expect(serve({ ...c, seq: () => 42 })).toBe(undefined);
    expect(serve({ ...c, seq: () => 41 })).toBeDefined();
    // The item counters' reads when they cannot say what the case's item counted before it.
    expect(serve({ ...c, before: () => undefined })).toBe(undefined);
    // Without covisit here, serving cannot answer: no read.
    expect(
      scorerServe(
        () => undefined,
        () => undefined,
        movieSources,
      )("u1", history, 1, "m7"),
    ).toBe(undefined);
  });
});
