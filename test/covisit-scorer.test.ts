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
import {
  covisitStage,
  type CovisitView,
  prequentialStage,
  type PrequentialSettings,
  type PrequentialView,
} from "../actors/stages/index.js";
import type { StageHandler, StageSpec } from "../actors/host/index.js";
import type { ParsedRecord } from "../actors/contract/index.js";
import { qualityWiring } from "../actors/plan/index.js";
import { MOVIES } from "../actors/sources/index.js";
import { startStage, type StageDefinition } from "../runtime/index.js";
import { createStageState, type StageStateInternal } from "../state/index.js";

/**
 * With the blend, the prequential scorer runs inside the covisit
 * stage and reads its co-visitation and counters, instead of a prequential stage keeping copies
 * of them (the same work twice: ~10% of the app's CPU in bench step 2). Its figures must be the
 * prequential stage's, and the covisit stage's own answers unchanged, on the same records, also
 * across a restart from a snapshot (state through JSON, as LevelDB holds it).
 */
const N = 4000;
let events: LogEvent[] = [];
const sources = movieSources;
const scoring = movieScoring;

beforeAll(async () => {
  events = await movieLensHead(N);
});

const records = (from: number, to: number) => recordsOf(events, from, to);

/** Runs a stage over events [from, to) in batches of uneven sizes; its view. */
function drive<S, V>(
  def: StageDefinition<ParsedRecord, Record<string, never>, S, V>,
  settings: S,
  state: StageStateInternal,
  from: number,
  to: number,
): V {
  const run = startStage(
    def,
    { name: def.name, state, settings, scheduler: asyncScheduler, count: () => undefined },
    () => undefined,
  );
  run.restoreAll();
  pushUneven(run, records(from, to));
  return run.view;
}

/** The state as a restart loads it. */
const reload = reloadThroughJson;

const covisitDef = covisitStage as unknown as StageDefinition<
  ParsedRecord,
  Record<string, never>,
  { preset: typeof MOVIES; sources: typeof sources; scorer?: PrequentialSettings },
  CovisitView
>;
const prequentialDef = prequentialStage as unknown as StageDefinition<
  ParsedRecord,
  Record<string, never>,
  PrequentialSettings,
  PrequentialView
>;

/** What the covisit stage answers: every item's neighbours and the counters' lists. */
function answers(v: CovisitView, now: number): string {
  const items = new Set(events.map((e) => e.i));
  return JSON.stringify([
    [...items].map((i) => v.covisit().similar(i, now, 100)),
    v.trending().top(now, 100),
    v.popular().top(now, 100),
    v.progress(),
    v.fed(),
  ]);
}

describe("the prequential scorer inside the covisit stage", () => {
  it("scores as the prequential stage does, and leaves the covisit stage's answers as they were", () => {
    const alone = drive(prequentialDef, scoring, createStageState(), 0, N).report();
    const withScorer = drive(
      covisitDef,
      { preset: MOVIES, sources, scorer: scoring },
      createStageState(),
      0,
      N,
    );
    const plain = drive(covisitDef, { preset: MOVIES, sources }, createStageState(), 0, N);
    expect(alone.all.blend!.cases).toBeGreaterThan(1000);
    expect(withScorer.prequential()?.report()).toEqual(alone);
    expect(plain.prequential()).toBeUndefined();
    const now = withScorer.progress();
    expect(answers(withScorer, now)).toBe(answers(plain, now));
  }, 120_000);

  it("counts the same after a restart from a snapshot as without one (one state for both)", () => {
    const settings = { preset: MOVIES, sources, scorer: { ...scoring, sample: 0.5 } };
    const full = drive(covisitDef, settings, createStageState(), 0, N);
    const state = createStageState();
    drive(covisitDef, settings, state, 0, 2100);
    const after = drive(covisitDef, settings, reload(state), 2100, N);
    expect(after.prequential()!.report()).toEqual(full.prequential()!.report());
    expect(answers(after, after.progress())).toBe(answers(full, full.progress()));
  }, 120_000);

  it("is wired into the covisit stage with the blend: no prequential stage runs, its figures are read from covisit/0", () => {
    const specs: StageSpec<StageHandler>[] = [];
    const view = { report: () => ({}), methods: ["blend"], progress: () => 0 };
    const live = (id: string) =>
      id === "covisit/0"
        ? ({ handle: () => undefined, prequential: () => view } as unknown as StageHandler)
        : undefined;
    const q = qualityWiring(
      { partitions: 2, preset: "movies", ranker: "blend" },
      { stream: "S", run: (s) => void specs.push(s), live, scorerInCovisit: true },
    );
    expect(specs.filter((s) => s.stage === "prequential")).toEqual([]);
    expect(q.scorer?.().preset).toBe(MOVIES);
    expect(q.prequential()?.methods).toEqual(["blend"]);
    // RANKER=design without arms that blend: no covisit stage, so the prequential stage runs
    // on its own (here: an arm ranks by the design).
    const alone: StageSpec<StageHandler>[] = [];
    const d = qualityWiring(
      {
        partitions: 2,
        preset: "movies",
        ranker: "design",
        arms: [{ name: "a", share: 100, ranker: "design" }],
      },
      { stream: "S", run: (s) => void alone.push(s), live, scorerInCovisit: true },
    );
    expect(alone.filter((s) => s.stage === "prequential")).toHaveLength(1);
    expect(d.scorer).toBeUndefined();
  });
});
