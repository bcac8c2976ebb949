import type { Metrics } from "../../connectors/http/metrics.js";
import type { StageHandler, StageOutput, StageSpec } from "../../actors/host/index.js";
import {
  type ConsumerView,
  createBadRatioAlert,
  createJoinHandler,
} from "../../actors/stages/index.js";
import {
  createParseHandler,
  createWatermarkHandler,
  createWindowHandler,
  loadInterestHandler,
  createPopularityHandler,
  createTrendingHandler,
  createCatalogueHandler,
  createCatalogueUpsertHandler,
} from "../../actors/plan/index.js";
import { subjects } from "../../actors/contract/index.js";
import { STREAMS } from "../../connectors/nats/topology.js";
import { EVENTS_STREAM } from "../../connectors/nats/streams.js";
import { loadMoviesCatalog } from "../replay/movies-catalog.js";
import type { PipelineConfig } from "./config.js";

/** Runs one stage instance (under the pipeline's supervisor, in its unit). */
export type RunStage = <H extends StageHandler>(spec: StageSpec<H>) => void;

export interface StageWiring {
  run: RunStage;
  metrics?: Metrics;
  log?: (obj: object, msg: string) => void;
  /** The server's view of parse's consumer, on which idleness is decided. */
  idleProbe(): Promise<ConsumerView>;
  /** The engine's idle-marker key (see PipelineDeps.markerKey). */
  markerKey?: () => Promise<Uint8Array>;
  /**
   * Runs a path of stages, each reading what the one before it writes: the pipeline chains them
   * where its rule allows (chains.ts). Absent: each runs as its own instance.
   */
  path?(specs: readonly StageSpec<StageHandler>[]): void;
}

/**
 * How often parse tells every partition that event time moved (an empty hop to each subject
 * without records: 2 × PARTITIONS hops, each read by every stage of the partition): every 100 ms
 * when it jumped (a replay, a catch-up, an idle marker: windows close as it goes), once a second
 * when it crept on by less than 10 s of event time, as it does under live traffic. At 100 ms
 * the creep made half of parse's hops at 100 events/s (150 of them a second per subject family
 * against 99 at 1 s), and the app's main process took 48% of a core against 43% (bench/README
 * "What limits").
 * Windows close, and trending finals come, minutes of event time after the events they hold, so
 * a partition without records learning such a creep within a second delays nothing; the
 * watermark an answer reports lags by as much.
 */
export const PROGRESS_BROADCAST = { everyMs: 100, slow: { everyMs: 1_000, belowMs: 10_000 } };

/**
 * The wiring of the design stages (DESIGN §3): parse, then per partition the user path
 * (watermark → window → interest-ranking → popularity-join: one path, chained with CHAINING=on)
 * and the item path (popularity, trending, catalogue), each on the subject its upstream writes;
 * and the catalogue's upserts, read from their own stream (ITEMS).
 */
export function wireStages(cfg: PipelineConfig, d: StageWiring): void {
  const { run } = d;
  const P = cfg.partitions;
  // Late events are counted in the stage's snapshot (exact across crashes) and in Prometheus.
  const lateCounter = (out: StageOutput) => ({
    late: (stage: string, n: number, path?: string) => {
      out.count("late", n);
      if (path !== undefined) out.count(`late:${path}`, n);
      d.metrics?.late.inc({ stage }, n);
    },
  });

  const perInput = "per-input" as const;
  const path =
    d.path ??
    ((specs: readonly StageSpec<StageHandler>[]) => {
      for (const spec of specs) run(spec);
    });
  // Outside the parse factory: the alert outlives restarts of the parse actor.
  const badRatio = createBadRatioAlert(d.metrics, { ...(d.log ? { log: d.log } : {}) });
  // Loaded once per process (validated by bin/config.ts): a restart of parse keeps it.
  const genres =
    cfg.preset === "movies" && cfg.moviesCatalog !== undefined
      ? loadMoviesCatalog(cfg.moviesCatalog)
      : undefined;
  // Read (or made) once, when parse first starts in this process: a restart of parse keeps it.
  let markerKey: Promise<Uint8Array> | undefined;
  const parseMarkerKey = () =>
    d.markerKey === undefined
      ? Promise.resolve(undefined)
      : (markerKey ??= d.markerKey().catch((err: unknown) => {
          markerKey = undefined; // asked again at parse's next restart
          throw err;
        }));
  run({
    stage: "parse",
    partition: 0,
    stream: EVENTS_STREAM,
    subject: "events.>",
    input: "raw",
    batching: { maxRecords: cfg.batchMaxRecords, maxDelayMs: cfg.batchMaxDelayMs },
    tickMs: 100,
    create: async (state, out) =>
      createParseHandler(state, out, {
        ...(await parseMarkerKey().then((key) => (key !== undefined ? { markerKey: key } : {}))),
        partitions: P,
        preset: cfg.preset,
        dedupeHorizonMs: cfg.dedupeHorizonMs,
        dedupeMaxIds: cfg.dedupeMaxIds,
        maxEventBytes: cfg.maxEventBytes,
        ...(cfg.maxFutureSkewMs !== undefined ? { maxFutureSkewMs: cfg.maxFutureSkewMs } : {}),
        broadcastEveryMs: PROGRESS_BROADCAST.everyMs,
        slowBroadcast: PROGRESS_BROADCAST.slow,
        badRatio,
        idle: { timeoutMs: cfg.idleTimeoutMs, probe: d.idleProbe },
        ...(genres !== undefined ? { genres } : {}),
        counters: {
          received: (n) => {
            out.count("in", n);
            d.metrics?.received.inc(n);
          },
          accepted: (n) => {
            out.count("accepted", n);
            d.metrics?.accepted.inc(n);
          },
          duplicate: (n) => {
            out.count("duplicate", n);
            d.metrics?.duplicates.inc(n);
          },
          bad: (reason) => {
            out.count("dead_letter", 1);
            out.count(`dead_letter:${reason}`, 1);
            d.metrics?.bad.inc({ reason });
          },
        },
      }),
  });
  // One reader of the upserts: their stream's order is the explicit layer's order.
  run({
    stage: "catalogue-upsert",
    partition: 0,
    stream: STREAMS.items,
    subject: subjects.itemsUpsert,
    input: "raw",
    inFlight: 256,
    batching: perInput,
    create: (state, out) => createCatalogueUpsertHandler(state, out),
  });
  for (let p = 0; p < P; p++) {
    run({
      stage: "catalogue",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.items(p),
      input: "envelope",
      batching: perInput,
      create: (state, out) => createCatalogueHandler(state, out),
    });
    const watermark: StageSpec<StageHandler> = {
      stage: "watermark",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.parse(p),
      input: "envelope",
      batching: perInput,
      create: (state, out) =>
        createWatermarkHandler(state, out, {
          partition: p,
          outOfOrdernessMs: cfg.userOutOfOrdernessMs,
          counters: lateCounter(out),
        }),
    };
    const window: StageSpec<StageHandler> = {
      stage: "window",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.watermark(p),
      input: "envelope",
      batching: perInput,
      create: (state, out) =>
        createWindowHandler(state, out, {
          partition: p,
          sizeMs: cfg.windowMs,
          outOfOrdernessMs: cfg.userOutOfOrdernessMs,
        }),
    };
    const interest: StageSpec<StageHandler> = {
      stage: "interest-ranking",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.window(p),
      input: "envelope",
      batching: perInput,
      create: (state, out) =>
        loadInterestHandler(state, out, {
          partition: p,
          horizonMs: cfg.interestHorizonMs,
          windowMs: cfg.windowMs,
          topCategories: cfg.topCategories,
        }),
    };
    const join: StageSpec<StageHandler> = {
      stage: "popularity-join",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.interestRanking(p),
      input: "envelope",
      batching: perInput,
      create: (state) => createJoinHandler(state, { purchaseExclusionMs: cfg.interestHorizonMs }),
    };
    path([watermark, window, interest, join]);
    run({
      stage: "popularity",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.items(p),
      input: "envelope",
      batching: perInput,
      create: (state, out) =>
        createPopularityHandler(state, out, {
          partition: p,
          horizonMs: cfg.popularityHorizonMs,
          counters: lateCounter(out),
        }),
    });
    run({
      stage: "trending",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.items(p),
      input: "envelope",
      batching: perInput,
      tickMs: Math.min(1000, cfg.trendingTriggerMs),
      create: (state, out) =>
        createTrendingHandler(state, out, {
          partition: p,
          oneHourOutOfOrdernessMs: cfg.trendingHourOutOfOrdernessMs,
          oneDayOutOfOrdernessMs: cfg.trendingDayOutOfOrdernessMs,
          weights: cfg.trendingWeights,
          topK: 100,
          counters: lateCounter(out),
        }),
    });
  }
}
