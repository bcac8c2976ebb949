import { Gauge, type Registry } from "prom-client";
import type { RecentEvent, RecommendOptions, Recommendations, SimilarItems } from "./backend.js";
import type { Preset } from "./event.js";
import type { StageHandler, StageSpec } from "./host.js";
import type { PopularityRow } from "./popularity.js";
import { loadRecommenderHandler, type RecommenderHandler } from "./recommender-handler.js";
import { blendAnswer, covisitSimilar } from "./recommender-serve.js";
import type { TrainFn } from "./recommender-trainer.js";
import { defaultBlend, defaultSourceSettings } from "./sources/defaults.js";
import { trainInWorker } from "./sources/als-worker.js";
import { presetNamed } from "./sources/preset.js";
import { subjects } from "./subjects.js";

/** RANKER and RETRAIN_INTERVAL_MS (bin/config.ts); absent: the design ranking, as before. */
export interface RankerConfig {
  /** blend: DESIGN §3.7's blend of the candidate sources; design: §3.4–3.6 only. */
  ranker?: "blend" | "design";
  /** Event time between ALS trainings (default 1 h). */
  retrainIntervalMs?: number;
}

export interface RankerWiring {
  /** The blend's answer; undefined with RANKER=design or while the stage is not running. */
  answer(
    userId: string,
    n: number,
    options: RecommendOptions | undefined,
    row: (item: string) => PopularityRow | undefined,
  ): Recommendations | undefined;
  /** The user's recent items from the history source; undefined while the stage is not running. */
  recent(userId: string, n: number): RecentEvent[] | undefined;
  /** Co-visitation's similar items; undefined when it cannot answer (then: the stand-in). */
  similar(
    itemId: string,
    n: number,
    row: (item: string) => PopularityRow | undefined,
  ): SimilarItems | undefined;
}

const HOUR = 3_600_000;

/** ALS in a worker thread: the event loop that ingests and serves never trains. */
const trainWorker: TrainFn = (ratings, settings, signal) =>
  trainInWorker({ ratings, settings }, { signal });

/**
 * Adds the recommender stage to the pipeline (one instance, unit p0, reading every partition's
 * user-path hops) and answers from it. With RANKER=design nothing runs and nothing changes.
 */
export function recommenderWiring(
  cfg: RankerConfig & { preset: Preset; idleTimeoutMs: number; partitions: number },
  deps: {
    /** The hops stream (the pipeline's topology names it). */
    stream: string;
    run: (spec: StageSpec<RecommenderHandler>) => void;
    live: () => StageHandler | undefined;
    log?: (obj: object, msg: string) => void;
    train?: TrainFn;
    registry?: Registry;
  },
): RankerWiring {
  if ((cfg.ranker ?? "design") !== "blend")
    return { answer: () => undefined, recent: () => undefined, similar: () => undefined };
  const preset = presetNamed(cfg.preset);
  const bs = defaultBlend(preset);
  deps.run({
    stage: "recommender",
    partition: 0,
    stream: deps.stream,
    subject: subjects.parseAll,
    input: "raw",
    batching: "per-input",
    create: (state) =>
      loadRecommenderHandler(state, {
        preset,
        sources: defaultSourceSettings(preset),
        retrainMs: cfg.retrainIntervalMs ?? HOUR,
        idleMs: cfg.idleTimeoutMs,
        partitions: cfg.partitions,
        train: deps.train ?? trainWorker,
        ...(deps.log ? { log: deps.log } : {}),
      }),
  });
  const view = () => deps.live() as RecommenderHandler | undefined;
  if (deps.registry)
    new Gauge({
      name: "reco_recommender",
      help: "The recommender stage (RANKER=blend): events fed, input point (events) of the newest training and of the served implicit model, trainings running or waiting",
      labelNames: ["name"] as const,
      registers: [deps.registry],
      collect() {
        const v = view();
        if (!v) return;
        const st = v.status();
        this.set({ name: "events" }, st.events);
        this.set({ name: "train_point" }, st.trainAt);
        this.set({ name: "model_point" }, st.models.implicit ?? 0);
        this.set({ name: "training" }, v.training() ? 1 : 0);
      },
    });
  return {
    answer(userId, n, options, row) {
      const v = view();
      return v ? blendAnswer(v, bs, row, userId, n, options) : undefined;
    },
    recent(userId, n) {
      const v = view();
      return v
        ?.recommender()
        .recent(userId, n)
        .map((x) => ({
          itemId: x.item,
          eventType: x.type,
          eventTime: x.ts,
          category: v.categoryOf(x.item) ?? "",
          count: x.count,
        }));
    },
    similar(itemId, n, row) {
      const v = view();
      return v ? covisitSimilar(v, row, itemId, n) : undefined;
    },
  };
}
