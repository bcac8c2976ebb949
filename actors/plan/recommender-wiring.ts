import { Gauge, type Registry } from "prom-client";
import { tap } from "rxjs";
import {
  createStageLogic,
  type InputBatch,
  type PortMap,
  type StageDefinition,
} from "../../runtime/index.js";
import type { RecentEvent, SimilarItems, Preset } from "../contract/index.js";
import type { StageHandler, StageSpec } from "../host/index.js";
import type { PopularityRow, PrequentialSettings, TrainFn } from "../stages/index.js";
import {
  COLLABORATIVE_TRAINER,
  collabInput,
  collaborativeStage,
  collaborativeTrainerStage,
  type CollaborativeView,
  type CollaborativePartView,
  type ModelShelf,
  shelfView,
  covisitStage,
  type CovisitView,
  historyStage,
  type HistoryView,
  isIdleMark,
  mergedStageSpec,
  pairsInput,
  partitionInput,
} from "../stages/index.js";
import { partitionOf, subjects } from "../contract/index.js";
import {
  covisitSimilar,
  createBlendAnswers,
  recentOf,
  type BlendAnswers,
  createChangeFeed,
  type ChangeFeed,
  composeView,
  itemWideViews,
  type RecommenderView,
  scorerServe,
} from "../serving/index.js";
import { loadStageHandler } from "../host/index.js";
import {
  createItemIds,
  defaultBlend,
  defaultSourceSettings,
  trainInWorker,
  createHistory,
  presetNamed,
} from "../sources/index.js";
import { stageTopology } from "./topology.js";

/** RANKER and RETRAIN_INTERVAL_MS (bin/config.ts); absent: the design ranking, as before. */
export interface RankerConfig {
  /** blend: DESIGN §3.7's blend of the candidate sources; design: §3.4–3.6 only. */
  ranker?: "blend" | "design";
  /**
   * COVISIT_PARTITIONS: item partitions of co-visitation and the blend's item counters
   * (`covisit/<q>`); default: the user partitions'. The app sets the deployment's at start
   * (connectors/nats/engine-layout.ts), the same for every process of it. Each event's pairs
   * go to every item partition that holds one of its items, so fewer item partitions send
   * fewer pair records (bench step 2, 8 user partitions: ~4.7 records per event with 8, 1.8
   * with 2). Answers do not depend on it: each item's lists and counters are fed its own
   * records in EVENTS order either way.
   */
  covisitPartitions?: number;
  /** Event time between ALS trainings (default 1 h). */
  retrainIntervalMs?: number;
  /**
   * Record the source stages' state changes for a replica in another process (`changes`: the
   * ingest process of a split `reco start`). Off by default: unread, they would only grow.
   */
  replicaChanges?: boolean;
  /**
   * With `replicaChanges`: the snapshots the replica read itself, by instance (a token each):
   * those instances' first runs send no dump (blend-changes.ts createChangeFeed).
   */
  replicaBases?: Readonly<Record<string, string>>;
  /**
   * ANSWER_MAX_AGE_MS: a blended answer is served again for this long although what it read
   * changed, its staleness reported (blend-answers.ts); 0 (the default): exact answers only.
   */
  answerMaxAgeMs?: number;
  /**
   * "B records or T ms" of the history stages' pair hops (default: one hop per input message
   * and item partition). Every history batch sends each item partition its pairs and a mark, so
   * per input message P×P hops go out: at 1,000 events/s (hops of one to a few events) 2.4 pair
   * hops per event, 73% of every hop message. Held for T, the marks of several inputs go in one
   * hop; co-visitation and the item counters then lag by up to T (10 T while backlogged).
   */
  pairsBatching?: { maxRecords: number; maxDelayMs: number };
}

export interface RankerWiring {
  /** The blend's answer; undefined with RANKER=design or while the stage is not running. */
  answer: BlendAnswers["answer"];
  /** The user's recent items from the history source; undefined while the stage is not running. */
  recent(userId: string, n: number): RecentEvent[] | undefined;
  /**
   * The source stages' changes, for a replica in another process (actors/serving/blend-changes.ts: the
   * serving process of a split `reco start`); undefined with RANKER=design.
   */
  readonly changes?: ChangeFeed;
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
 * Adds the candidate source stages to the pipeline (DESIGN §3.7) and answers from them:
 * `history/<p>` per user partition (unit p<p>), fed its partition's hops, with co-visitation's
 * user side, whose pairs go to `covisit/<q>` per item partition (unit p<q>), each fed every user
 * partition's pairs for its items merged into EVENTS order; `collaborative/<p>` per user
 * partition (unit p<p>), fed its partition's hops, whose rows' changes at each training point go
 * to `collaborative-trainer/0` (unit p0), which trains ALS and holds the served models. An answer
 * composes the user's partition's history with the item partitions' covisit and the trainer's
 * models over the user's collaborative rows at query time. With RANKER=design nothing runs and
 * nothing changes.
 */
export function recommenderWiring(
  cfg: RankerConfig & { preset: Preset; idleTimeoutMs: number; partitions: number },
  deps: {
    /** The hops stream (the pipeline's topology names it). */
    stream: string;
    run: (spec: StageSpec<StageHandler>) => void;
    /** The running instance's handler by id ("history/2"), undefined if not running here. */
    live: (id: string) => StageHandler | undefined;
    log?: (obj: object, msg: string) => void;
    train?: TrainFn;
    registry?: Registry;
    /** Run the source stages whatever RANKER says (an A/B arm blends: actors/quality/arms.ts). */
    blendArm?: boolean;
    /**
     * The prequential scorer's settings (quality-wiring.ts): it runs in each history stage and
     * reads the serving path's sources; the source stages run whatever RANKER says.
     */
    scorer?: () => PrequentialSettings;
    /**
     * The served models kept apart from the trainer's snapshot (ModelShelf), with `serveFirst`
     * when this process starts the trainer with its units: the shelf's models serve until the
     * trainer runs (it loads last, bin/pipeline/units.ts START_TIERS).
     */
    shelf?: { shelf: ModelShelf; serveFirst: boolean };
  },
): RankerWiring {
  if ((cfg.ranker ?? "design") !== "blend" && !deps.blendArm && !deps.scorer)
    return { answer: () => undefined, recent: () => undefined, similar: () => undefined };
  const preset = presetNamed(cfg.preset);
  const bs = defaultBlend(preset);
  const sources = defaultSourceSettings(preset);
  const noHistory = createHistory({ preset });
  /**
   * Changes of the source stages' data: every batch with records that a source stage takes, and
   * every new run of one (a start, a restart from a snapshot), counts one, before the stage
   * applies it. With the served models and the popularity rows, that is all a blended answer
   * reads besides the event-time clock (the models change apart, when a training ends). Batches
   * without records (idle progress) move only the clock: see MEMO_MAX_LAG_MS.
   */
  let changes = 0;
  /** Every run's state changes, for a replica (actors/serving/blend-replica.ts). */
  const feed = cfg.replicaChanges ? createChangeFeed(cfg.replicaBases) : undefined;
  const counted = <R, P extends PortMap, S, V>(
    def: StageDefinition<R, P, S, V>,
    instance: string,
    /** Whether a record changes data (default: every one does). */
    data: (r: R) => boolean = () => true,
  ): StageDefinition<R, P, S, V> => ({
    ...def,
    create(ctx) {
      changes++;
      const logic = createStageLogic(
        def,
        feed ? { ...ctx, state: feed.track(instance, ctx.state) } : ctx,
      );
      const count = tap((b: InputBatch<R>) => {
        if (b.records.some(data)) changes++;
      });
      return { ...logic, operator: (batches$) => logic.operator(batches$.pipe(count)) };
    },
  });
  const P = cfg.partitions;
  const Q = cfg.covisitPartitions ?? P;
  const covisitIds = Array.from({ length: Q }, (_, q) => `covisit/${q}`);
  /** Every item partition's co-visitation and counters read together; undefined while one is not running here. */
  const covisit = itemWideViews(
    covisitIds.map((id) => () => deps.live(id) as (StageHandler & CovisitView) | undefined),
    { preset, ...sources.covisit },
  );
  const collaborativeIds = Array.from({ length: P }, (_, p) => `collaborative/${p}`);
  /** Partition p's collaborative rows, if its stage runs in this process. */
  const collaborativePart = (p: number) =>
    (deps.live(collaborativeIds[p]!) as (StageHandler & CollaborativePartView) | undefined)?.part();
  /** The shelf's view until the trainer first runs here (null from then on). */
  let shelved: CollaborativeView | undefined | null = deps.shelf?.serveFirst
    ? shelfView({ sources, partitions: P, part: collaborativePart, shelf: deps.shelf.shelf })
    : undefined;
  const collaborative = (): CollaborativeView | undefined => {
    const trainer = deps.live(COLLABORATIVE_TRAINER) as
      (StageHandler & CollaborativeView) | undefined;
    if (trainer) shelved = null;
    return trainer ?? shelved ?? undefined;
  };
  const serve = scorerServe(
    covisit,
    (user) => {
      const view = collaborative();
      const part = collaborativePart(partitionOf(user, P));
      return view && part && { view, seq: part.seq() };
    },
    sources,
  );
  const historyDefs = Array.from({ length: cfg.partitions }, (_, p) =>
    counted(historyStage, `history/${p}`),
  );
  // A mark moves only the clock (as idle progress does elsewhere: see MEMO_MAX_LAG_MS).
  const covisitDefs = covisitIds.map((id) => counted(covisitStage, id, (r) => r.p === undefined));
  /** The item numbering the partitions' neighbour lists share (they are read together). */
  const itemIds = createItemIds();
  // An idle marker moves the clock only (see MEMO_MAX_LAG_MS): counted, every marker made every
  // user's kept answer be computed again (bench step 4: ~1 ms each, 12.8k users each round).
  const collaborativeDefs = collaborativeIds.map((id) =>
    counted(collaborativeStage, id, (r) => !isIdleMark(r)),
  );
  // Its batches change no answer: the copies are trained on, and the served models are part of
  // an answer's stamp (blend-answers.ts).
  const trainerDef = counted(collaborativeTrainerStage, COLLABORATIVE_TRAINER, () => false);
  for (let p = 0; p < cfg.partitions; p++)
    deps.run({
      stage: "history",
      partition: p,
      stream: deps.stream,
      subject: subjects.parse(p),
      input: "envelope",
      batching: cfg.pairsBatching ?? "per-input",
      create: (state, out) =>
        loadStageHandler(historyDefs[p]!, state, out, {
          settings: {
            preset,
            halfLifeMs: sources.historyHalfLifeMs,
            maxItemsPerUser: sources.maxItemsPerUser,
            ...(deps.scorer ? { scorer: { ...deps.scorer(), serve } } : {}),
            covisit: { options: { preset, ...sources.covisit }, partitions: Q },
          },
          topology: stageTopology.history(p),
        }),
    });
  for (let q = 0; q < Q; q++)
    deps.run(
      mergedStageSpec(
        covisitDefs[q]!,
        deps.stream,
        pairsInput(q, P),
        () => ({ preset, sources, partition: q, partitions: Q, ids: itemIds }),
        q,
      ),
    );
  for (let p = 0; p < P; p++)
    deps.run(
      mergedStageSpec(
        collaborativeDefs[p]!,
        deps.stream,
        partitionInput(p),
        () => ({ preset, retrainMs: cfg.retrainIntervalMs ?? HOUR, partition: p }),
        p,
        stageTopology.collaborative(p),
        // A crossing's changes can be megabytes (a million new users): read by record number.
        true,
      ),
    );
  deps.run(
    mergedStageSpec(trainerDef, deps.stream, collabInput(P), () => ({
      preset,
      sources,
      train: deps.train ?? trainWorker,
      partitions: P,
      part: collaborativePart,
      ...(deps.shelf ? { shelf: deps.shelf.shelf } : {}),
      ...(deps.log ? { log: deps.log } : {}),
    })),
  );
  const history = (user: string) =>
    deps.live(`history/${partitionOf(user, cfg.partitions)}`) as
      (StageHandler & HistoryView) | undefined;
  /**
   * The last view composed per history partition, with what it was composed from. A view is a
   * pure function of the stage handlers and the sources they return (composeView, readsOf), so
   * while those are the same objects the same view serves: composing one per request was ~5 µs
   * of a memoised answer (its closures; a profile of bench step 4).
   */
  const composed: ({ parts: readonly unknown[]; view: RecommenderView } | undefined)[] = [];
  const historyIds = Array.from({ length: cfg.partitions }, (_, p) => `history/${p}`);
  /** The composed view for a user; undefined while a stage it needs is not running here. */
  const view = (user: string) => {
    const p = partitionOf(user, cfg.partitions);
    const h = deps.live(historyIds[p]!) as (StageHandler & HistoryView) | undefined;
    const c = covisit();
    if (!h || !c) return undefined;
    const cf = collaborative();
    const parts = [
      h,
      c,
      cf,
      h.history(),
      c.covisit(),
      c.trending(),
      c.popular(),
      cf?.collaborative(),
    ] as const;
    const last = composed[p];
    if (last && parts.every((x, i) => x === last.parts[i])) return last.view;
    const v = composeView(
      { history: h, covisit: c, ...(cf ? { collaborative: cf } : {}) },
      sources,
    );
    composed[p] = { parts, view: v };
    return v;
  };
  if (deps.registry)
    new Gauge({
      name: "reco_recommender",
      help: "The source stages (RANKER=blend): events fed to collaborative, input point (events) of the newest training and of the served implicit model, trainings running or waiting, users folded in since the model, events fed to covisit; blended answers served from the memo (memo_hits) and computed (memo_misses: requests without options); of the hits, those served by ANSWER_MAX_AGE_MS although what they read had changed (memo_aged)",
      labelNames: ["name"] as const,
      registers: [deps.registry],
      collect() {
        const v = collaborative();
        if (v) {
          const st = v.status();
          this.set({ name: "events" }, st.events);
          this.set({ name: "train_point" }, st.trainAt);
          this.set({ name: "model_point" }, st.models.implicit ?? 0);
          this.set({ name: "training" }, v.training() ? 1 : 0);
          this.set({ name: "folded" }, v.collaborative().folded);
        }
        const c = covisit();
        if (c) this.set({ name: "covisit_events" }, c.fed());
        this.set({ name: "memo_hits" }, answers.memo.hits);
        this.set({ name: "memo_misses" }, answers.memo.misses);
        this.set({ name: "memo_aged" }, answers.memo.aged);
      },
    });
  const answers = createBlendAnswers({
    blend: bs,
    view,
    collaborative: () => collaborative()?.collaborative(),
    changes: () => changes,
    ...(cfg.answerMaxAgeMs ? { maxAgeMs: cfg.answerMaxAgeMs } : {}),
  });
  return {
    ...(feed ? { changes: feed } : {}),
    answer: (userId, n, options, row, blend, rowsVersion) =>
      answers.answer(userId, n, options, row, blend, rowsVersion),
    recent(userId, n) {
      const h = history(userId);
      const c = covisit();
      if (!h) return undefined;
      return recentOf(h.history(), c && ((i) => c.categoryOf(i)), userId, n);
    },
    similar(itemId, n, row) {
      const c = covisit();
      if (!c) return undefined;
      // Similar items need no user: any history view composes (the lists are not read).
      const v = composeView({ history: { history: () => noHistory }, covisit: c }, sources);
      return covisitSimilar(v, row, itemId, n);
    },
  };
}
