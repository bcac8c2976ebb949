import type { NatsConnection } from "nats";
import { Gauge } from "prom-client";
import type { Observable } from "rxjs";
import { createSupervisor, type Supervisor } from "../runtime/index.js";
import {
  createStageInstance,
  type HostDeps,
  type PoisonLedger,
  type StageHandler,
  type StageInstance,
  type StageOutput,
  type StageSpec,
} from "../actors/host.js";
import type { StateDb } from "../state/index.js";
import { ensureTopology, STREAMS, whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ensureEventsStream, EVENTS_STREAM } from "../connectors/nats/streams.js";
import {
  BackendUnavailableError,
  hasOptions,
  MAX_COUNT,
  type RecommendOptions,
  type RecoBackend,
  type Recommendations,
  type TrendingSnapshot,
  type TrendingWindowName,
} from "../actors/backend.js";
import type { Metrics } from "../connectors/http/metrics.js";
import type { Preset } from "../actors/event.js";
import { createParseHandler } from "../actors/parse.js";
import { consumerProbe } from "../connectors/nats/source.js";
import { loadMoviesCatalog } from "../bin/replay/movies-catalog.js";
import { createBadRatioAlert } from "../actors/parse-metrics.js";
import { createWatermarkHandler } from "../actors/watermark.js";
import { createWindowHandler } from "../actors/window.js";
import { loadInterestHandler } from "../actors/interest-ranking.js";
import { createPopularityHandler } from "../actors/popularity.js";
import { createJoinHandler, type JoinHandler } from "../actors/popularity-join.js";
import { createFallbackActor, type FallbackActor } from "../actors/fallback.js";
import { filterDesign } from "../actors/recommender-serve.js";
import { createTrendingHandler, type TrendingWeights } from "../actors/trending.js";
import { createPopularityTable } from "../actors/popularity-table.js";
import { createTrendingHub } from "../actors/trending-hub.js";
import { createPopularityTableActor } from "../connectors/nats/popularity-watch.js";
import { createTrendingHubActor } from "../connectors/nats/trending-watch.js";
import { partitionOf } from "../actors/partition.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { createLeaseManager, type LeaseManager } from "../connectors/nats/leases.js";
import { seqOf, type SnapshotArchive } from "../state/archive.js";
import { subjects } from "../actors/subjects.js";
import { itemInfo, similarByCategory } from "../actors/similar-by-category.js";
import { recommenderWiring, type RankerConfig } from "../actors/recommender-wiring.js";
import { qualityWiring } from "../actors/quality-wiring.js";

/** Everything the pipeline needs to know; validated by bin/config.ts. */
export interface PipelineConfig extends RankerConfig {
  partitions: number;
  preset: Preset;
  windowMs: number;
  userOutOfOrdernessMs: number;
  trendingHourOutOfOrdernessMs: number;
  trendingDayOutOfOrdernessMs: number;
  interestHorizonMs: number;
  popularityHorizonMs: number;
  topCategories: number;
  fallbackSize: number;
  /** TRENDING_WEIGHTS: score weight per event type; types without one do not count. */
  trendingWeights: TrendingWeights;
  trendingTriggerMs: number;
  snapshotIntervalMs: number;
  snapshotEveryMessages: number;
  batchMaxRecords: number;
  batchMaxDelayMs: number;
  dedupeHorizonMs: number;
  dedupeMaxIds: number;
  maxEventBytes: number;
  maxAttempts: number;
  duplicateWindowMs: number;
  replicas: number;
  /** IDLE_TIMEOUT_MS: parse's idle markers (DESIGN §3.2); 0: never. */
  idleTimeoutMs: number;
  /** MAX_FUTURE_SKEW_MS (actors/parse.ts); absent: parse's default. */
  maxFutureSkewMs?: number;
  /** MOVIES_CATALOG: MovieLens movies.csv whose first genres are the categories (PRESET=movies). */
  moviesCatalog?: string;
}

export interface Pipeline {
  readonly backend: RecoBackend;
  readonly supervisor: Supervisor;
  /** Stage instances by "<stage>/<partition>" (current incarnation). */
  instance(id: string): StageInstance<StageHandler> | undefined;
  /** Resolves when every actor runs. */
  ready(): Promise<void>;
  /** Snapshots every instance now (used by drain and tests). */
  snapshotAll(): Promise<void>;
  stop(): Promise<void>;
}

export interface PipelineDeps {
  nc: NatsConnection;
  stateDb: StateDb;
  metrics?: Metrics;
  log?: (obj: object, msg: string) => void;
  /** Called when supervision gives up (escalation). The process entry point exits non-zero. */
  onFatal?: (err: Error) => void;
  /**
   * Which units (`parse`, `p0`..`p<P-1>`: a partition's user-path and item-path stages) this
   * process runs: all of them (role `start`), a fixed set (`units`: e.g. parse in a process of
   * its own on a second core), or those its leases grant (role `worker`).
   */
  ownership?: { mode: "all" } | { mode: "units"; units: readonly string[] } | LeaseOwnership;
  /** Run the serving side (popularity table, trending hub, fallback actors). Default true. */
  serve?: boolean;
  /**
   * The engine's idle-marker key (connectors/nats/engine-key.ts engineMarkerKey), asked for when
   * parse starts. Absent: parse writes no idle markers and trusts none.
   */
  markerKey?: () => Promise<Uint8Array>;
  /** What every stage host gets besides its own settings: the hop form, a test's faults. */
  host?: Pick<HostDeps, "codec" | "faults">;
}

export interface LeaseOwnership {
  mode: "leases";
  workerId: string;
  /** Lease time; a dead worker's partitions move after at most this long. */
  leaseTtlMs: number;
  archive: SnapshotArchive;
  /** Snapshots of owned instances go to the archive this often (and on a graceful release). */
  archiveEveryMs: number;
}

export async function startPipeline(cfg: PipelineConfig, deps: PipelineDeps): Promise<Pipeline> {
  const { nc, metrics } = deps;
  const transport = natsHostTransport(nc);
  const jsm = await nc.jetstreamManager();
  // A cluster that lost a node answers again once it has elected new leaders: wait for it.
  await whenJetStreamAnswers(async () => {
    await ensureEventsStream(jsm, {
      replicas: cfg.replicas,
      duplicateWindowMs: cfg.duplicateWindowMs,
    });
    await ensureTopology(nc, jsm, {
      replicas: cfg.replicas,
      duplicateWindowMs: cfg.duplicateWindowMs,
    });
  });

  const supervisor = createSupervisor({
    id: "pipeline",
    // Backoff caps at 5 s, so a long NATS outage restarts a stage at most ~12 times a minute and
    // never escalates; 20 failures within a minute is a crash loop, which escalates.
    restart: { count: 20, period: 60_000, delay: 100, maxDelay: 5_000 },
    onEscalate: (err, child) => {
      deps.log?.({ err: String(err), child }, "stage escalated: the pipeline stops");
      deps.onFatal?.(err);
    },
  });
  const instances = new Map<string, StageInstance<StageHandler>>();
  const P = cfg.partitions;
  // Late events are counted in the stage's snapshot (exact across crashes) and in Prometheus.
  const lateCounter = (out: StageOutput) => ({
    late: (stage: string, n: number, path?: string) => {
      out.count("late", n);
      if (path !== undefined) out.count(`late:${path}`, n);
      metrics?.late.inc({ stage }, n);
    },
  });

  // Snapshot loads run one at a time, in the order instances start (serving ones first): the
  // loads are CPU work on the event loop that serves gRPC, and forty side by side (each parsing
  // chunks between reads) held it for seconds at a time (4.5 s measured with 1M users). In turn,
  // the loop is held for one slice of one load; consumers are created as each load ends.
  let loads: Promise<unknown> = Promise.resolve();
  const loadInTurn = <T>(load: () => Promise<T>): Promise<T> => {
    const next = loads.then(load, load);
    loads = next.catch(() => undefined);
    return next;
  };
  // Only where units start together at process start (`start`); a worker's units arrive one
  // lease at a time and load side by side as before.
  const inTurn = (deps.ownership ?? { mode: "all" }).mode !== "leases";
  const hostDeps = (stage: string, partition: number): HostDeps => ({
    ...deps.host,
    ...(inTurn ? { loadInTurn } : {}),
    transport,
    snapshots: deps.stateDb.instance(stage, partition),
    snapshotIntervalMs: cfg.snapshotIntervalMs,
    snapshotEveryMessages: cfg.snapshotEveryMessages,
    maxAttempts: cfg.maxAttempts,
    ...(metrics ? { metrics: hostMetrics(metrics, stage, partition) } : {}),
    ...(deps.log ? { log: deps.log } : {}),
  });

  // Every stage instance belongs to a unit of ownership; a unit starts and stops as a whole.
  // What serving needs (popularity-join's profiles and the fallback actor that answers from them)
  // is started first at process start: their snapshots load before the others', so a restarted
  // process answers from its last snapshot while the rest of the state loads and replays.
  const unitStarters = new Map<string, { start: () => void; serving: boolean }[]>();
  const unitIds = new Map<string, string[]>();
  const unitOf = (stage: string, partition: number) =>
    stage === "parse" ? "parse" : `p${partition}`;
  const servingStage = (id: string) =>
    id.startsWith("popularity-join/") || id.startsWith("fallback/");
  const register = (unit: string, id: string, start: () => void) => {
    unitStarters.set(unit, [
      ...(unitStarters.get(unit) ?? []),
      { start, serving: servingStage(id) },
    ]);
    unitIds.set(unit, [...(unitIds.get(unit) ?? []), id]);
  };
  const run = <H extends StageHandler>(spec: StageSpec<H>) => {
    const id = `${spec.stage}/${spec.partition}`;
    const ledger: PoisonLedger = new Map();
    const d = hostDeps(spec.stage, spec.partition);
    register(unitOf(spec.stage, spec.partition), id, () =>
      supervisor.supervise(id, () => {
        const inst = createStageInstance(spec, d, ledger);
        instances.set(id, inst as unknown as StageInstance<StageHandler>);
        return inst.actor;
      }),
    );
  };

  const perInput = "per-input" as const;
  // Outside the parse factory: the alert outlives restarts of the parse actor.
  const badRatio = createBadRatioAlert(metrics, { ...(deps.log ? { log: deps.log } : {}) });
  // Loaded once per process (validated by bin/config.ts): a restart of parse keeps it.
  const genres =
    cfg.preset === "movies" && cfg.moviesCatalog !== undefined
      ? loadMoviesCatalog(cfg.moviesCatalog)
      : undefined;
  // The server's view of parse's consumer (host.ts names it `${stage}_${partition}`).
  const idleProbe = consumerProbe(jsm, EVENTS_STREAM, "parse_0");
  // Read (or made) once, when parse first starts in this process: a restart of parse keeps it.
  let markerKey: Promise<Uint8Array> | undefined;
  const parseMarkerKey = () =>
    deps.markerKey === undefined
      ? Promise.resolve(undefined)
      : (markerKey ??= deps.markerKey().catch((err: unknown) => {
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
        broadcastEveryMs: 100,
        badRatio,
        idle: { timeoutMs: cfg.idleTimeoutMs, probe: idleProbe },
        ...(genres !== undefined ? { genres } : {}),
        counters: {
          received: (n) => {
            out.count("in", n);
            metrics?.received.inc(n);
          },
          accepted: (n) => {
            out.count("accepted", n);
            metrics?.accepted.inc(n);
          },
          duplicate: (n) => {
            out.count("duplicate", n);
            metrics?.duplicates.inc(n);
          },
          bad: (reason) => {
            out.count("dead_letter", 1);
            out.count(`dead_letter:${reason}`, 1);
            metrics?.bad.inc({ reason });
          },
        },
      }),
  });
  for (let p = 0; p < P; p++) {
    run({
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
    });
    run({
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
    });
    run({
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
    });
    run({
      stage: "popularity-join",
      partition: p,
      stream: STREAMS.hops,
      subject: subjects.interestRanking(p),
      input: "envelope",
      batching: perInput,
      create: (state) => createJoinHandler(state, { purchaseExclusionMs: cfg.interestHorizonMs }),
    });
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

  // --- The recommender stage and the blend (RANKER=blend; actors/recommender-wiring.ts) ---
  const ranker = recommenderWiring(cfg, {
    stream: STREAMS.hops,
    ...(deps.log ? { log: deps.log } : {}),
    ...(metrics ? { registry: metrics.registry } : {}),
    run,
    live: (id) => {
      const inst = instances.get(id);
      return inst?.actor.getStatus() === "running" ? inst.handler() : undefined;
    },
  });
  // --- end recommender ---
  // Drift (DESIGN §7; actors/quality-wiring.ts): its stages and gauges.
  qualityWiring(cfg, {
    stream: STREAMS.hops,
    run,
    live: (id) => {
      const inst = instances.get(id);
      return inst?.actor.getStatus() === "running" ? inst.handler() : undefined;
    },
    ...(metrics ? { registry: metrics.registry } : {}),
  });

  const serve = deps.serve ?? true;
  const table = createPopularityTable();
  if (serve) supervisor.supervise("popularity-table", () => createPopularityTableActor(nc, table));
  for (let p = 0; p < P; p++) {
    if (!serve) break;
    // Built once: join() runs per GetRecommendations call.
    const joinId = `popularity-join/${p}`;
    register(`p${p}`, `fallback/${p}`, () =>
      supervisor.supervise(`fallback/${p}`, () =>
        createFallbackActor({
          partition: p,
          join: () => {
            const inst = instances.get(joinId);
            return inst?.actor.getStatus() === "running"
              ? (inst.handler() as JoinHandler)
              : undefined;
          },
          table,
          userOutOfOrdernessMs: cfg.userOutOfOrdernessMs,
          size: cfg.fallbackSize,
          score: 0.1,
          interestHorizonMs: cfg.interestHorizonMs,
        }),
      ),
    );
  }
  const hub = createTrendingHub({
    partitions: P,
    triggerMs: cfg.trendingTriggerMs,
    oneHourOutOfOrdernessMs: cfg.trendingHourOutOfOrdernessMs,
    oneDayOutOfOrdernessMs: cfg.trendingDayOutOfOrdernessMs,
  });
  if (serve)
    supervisor.supervise("trending-hub", () =>
      createTrendingHubActor(nc, hub, Math.min(250, cfg.trendingTriggerMs)),
    );

  /** Starts a unit's instances: all of them, the serving ones, or the others. */
  const startUnit = (unit: string, which: "serving" | "rest" | "all" = "all") => {
    for (const { start, serving } of unitStarters.get(unit) ?? [])
      if (which === "all" || serving === (which === "serving")) start();
  };
  /** Stops a unit's instances: no more input, and with `graceful` a final snapshot first. */
  const stopUnit = async (unit: string, graceful: boolean) => {
    const ids = unitIds.get(unit) ?? [];
    await Promise.all(
      ids.map(async (id) => {
        const inst = instances.get(id);
        if (inst && graceful && inst.actor.getStatus() === "running") {
          inst.stopInput();
          await inst.snapshotNow().catch(() => undefined);
        }
        // Also cancels a restart pending in backoff: without the lease it must not come back.
        await supervisor.unsupervise(id);
        instances.delete(id);
      }),
    );
  };
  const stageIdsOf = (unit: string) =>
    (unitIds.get(unit) ?? []).filter((id) => !id.startsWith("fallback/"));
  const split = (id: string) => {
    const [stage = "", partition = "0"] = id.split("/");
    return { stage, partition: Number(partition) };
  };

  let leases: LeaseManager | undefined;
  let archiveTimer: NodeJS.Timeout | undefined;
  const ownership = deps.ownership ?? { mode: "all" };
  // Units started at once (not by leases): serving instances first, the rest once they run.
  let fixedUnits: readonly string[] = [];
  if (ownership.mode === "all") {
    fixedUnits = [...unitStarters.keys()];
  } else if (ownership.mode === "units") {
    for (const unit of ownership.units)
      if (!unitStarters.has(unit))
        throw new Error(`unknown unit ${JSON.stringify(unit)} (expected parse or p0..p${P - 1})`);
    fixedUnits = ownership.units;
  } else {
    const { archive } = ownership;
    const upload = async (unit: string) => {
      for (const id of stageIdsOf(unit)) {
        const { stage, partition } = split(id);
        const snap = await deps.stateDb.instance(stage, partition).exportRaw();
        if (Number(snap.meta.seq ?? 0) > 0) await archive.put(stage, partition, snap);
      }
    };
    leases = await whenJetStreamAnswers(() =>
      createLeaseManager(nc, {
        workerId: ownership.workerId,
        units: [...unitStarters.keys()],
        ttlMs: ownership.leaseTtlMs,
        replicas: cfg.replicas,
        ...(deps.log ? { log: deps.log } : {}),
        async onAcquire(unit) {
          // Restore: whichever snapshot covers more input, ours on disk or the archived one. The
          // archive is a shortcut, not a requirement: if it cannot answer in time (a cluster
          // electing leaders), the unit starts from what it has and replays the rest of its input.
          // The unit's stages are fetched side by side: one wait, not one per stage.
          await Promise.all(
            stageIdsOf(unit).map(async (id) => {
              const { stage, partition } = split(id);
              const local = deps.stateDb.instance(stage, partition);
              const remote = await withTimeout(archive.get(stage, partition), 5_000).catch(
                (err: unknown) => {
                  deps.log?.(
                    { id, err: String(err) },
                    "snapshot archive unavailable: replaying instead",
                  );
                  return undefined;
                },
              );
              const localSeq = Number((await local.exportRaw()).meta.seq ?? 0);
              if (remote && seqOf(remote) > localSeq) await local.importRaw(remote);
            }),
          );
          deps.log?.({ unit, worker: ownership.workerId }, "unit acquired");
          startUnit(unit);
        },
        async onRevoke(unit, graceful) {
          await stopUnit(unit, graceful);
          if (graceful)
            await upload(unit).catch((err: unknown) =>
              deps.log?.({ unit, err: String(err) }, "snapshot upload failed"),
            );
          deps.log?.({ unit, graceful }, "unit released");
        },
      }),
    );
    await leases.start();
    archiveTimer = setInterval(() => {
      for (const unit of leases?.owned().keys() ?? []) {
        void (async () => {
          for (const id of stageIdsOf(unit)) await instances.get(id)?.snapshotNow();
          await upload(unit);
        })().catch((err: unknown) =>
          deps.log?.({ unit, err: String(err) }, "snapshot upload failed"),
        );
      }
    }, ownership.archiveEveryMs);
  }

  if (metrics) {
    const label = (id: string) => {
      const [stage = id, partition = "0"] = id.split("/");
      return { stage, partition };
    };
    new Gauge({
      name: "reco_stage_position",
      help: "Last input stream sequence processed by a stage instance",
      labelNames: ["stage", "partition"] as const,
      registers: [metrics.registry],
      collect() {
        for (const [id, inst] of instances) this.set(label(id), inst.position());
      },
    });
    new Gauge({
      name: "reco_stage_event_time_ms",
      help: "Event-time progress (epoch ms) a stage instance has reached (stamped on its outputs)",
      labelNames: ["stage", "partition"] as const,
      registers: [metrics.registry],
      collect() {
        for (const [id, inst] of instances) {
          const p = inst.progress();
          if (p > 0) this.set(label(id), p);
        }
      },
    });
    new Gauge({
      name: "reco_stage_state_keys",
      help: "Keys of per-key state a stage instance holds (bounded by open windows and horizons, not by events)",
      labelNames: ["stage", "partition"] as const,
      registers: [metrics.registry],
      collect() {
        for (const [id, inst] of instances) this.set(label(id), inst.stateKeys());
      },
    });
    new Gauge({
      name: "reco_stage_count",
      help: "Counts kept in a stage instance's snapshot (exact across restarts): accepted, duplicate, dead_letter[:reason], late",
      labelNames: ["stage", "partition", "name"] as const,
      registers: [metrics.registry],
      collect() {
        for (const [id, inst] of instances)
          for (const [name, v] of Object.entries(inst.stats())) this.set({ ...label(id), name }, v);
      },
    });
    supervisor.events$.subscribe((e) => {
      const [stage = e.childId, partition = ""] = e.childId.split("/");
      if (e.type === "child-failed") {
        metrics.errors.inc({ stage, partition });
        deps.log?.({ child: e.childId, err: String(e.error) }, "stage failed");
      }
      if (e.type === "child-restarted") metrics.restarts.inc({ stage, partition });
    });
  }

  let running = false;
  // fallback[p] answers in place (see FallbackActor.answer): no mailbox round trip, and the
  // gRPC façade answers within the request's own task (RecoBackend.recommendNow).
  const fallbackIds = Array.from({ length: P }, (_, p) => `fallback/${p}`);
  const recommendNow = (userId: string, n: number, options?: RecommendOptions): Recommendations => {
    if (running) {
      const blended = ranker.answer(userId, n, options, table.row);
      if (blended) {
        // The blend has no interest profile of its own: the top categories are the design
        // stages' (interest-ranking's 24 h profile), as RANKER=design answers them.
        const fallback = supervisor.child(fallbackIds[partitionOf(userId, P)]!) as
          FallbackActor | undefined;
        const design = fallback?.answer(userId, 1);
        return design && !(design instanceof BackendUnavailableError)
          ? { ...blended, topCategories: design.topCategories }
          : blended;
      }
    }
    const p = partitionOf(userId, P);
    const actor = supervisor.child(fallbackIds[p]!) as FallbackActor | undefined;
    const answer =
      running && actor
        ? hasOptions(options)
          ? filterDesign(actor.answer(userId, MAX_COUNT), n, options!)
          : actor.answer(userId, n)
        : new BackendUnavailableError(`partition ${p} is not serving yet (starting or restarting)`);
    if (answer instanceof BackendUnavailableError) throw answer;
    return answer;
  };
  const backend: RecoBackend = {
    isReady: () => running && table.initialised,
    recommendNow,
    async getRecommendations(userId, n, _signal, options): Promise<Recommendations> {
      return recommendNow(userId, n, options);
    },
    trending(window: TrendingWindowName): Observable<TrendingSnapshot> {
      return hub.updates(window);
    },
    similarItems: (itemId, n) =>
      ranker.similar(itemId, n, table.row) ?? similarByCategory(itemId, n, table, table.row),
    item: (itemId) => itemInfo(table.row(itemId)),
    // The history source remembers each user's items (RANKER=blend); the design stages keep
    // counts per category only, so without the blend the façade answers 501.
    ...(cfg.ranker === "blend"
      ? {
          recentEvents: (userId: string, n: number) => {
            const recent = ranker.recent(userId, n);
            if (!recent) throw new BackendUnavailableError("the history stage is not running yet");
            return recent;
          },
        }
      : {}),
  };

  for (const unit of fixedUnits) startUnit(unit, "serving");
  await supervisor.ready();
  running = true;
  for (const unit of fixedUnits) startUnit(unit, "rest");
  return {
    backend,
    supervisor,
    instance: (id) => instances.get(id),
    ready: () => supervisor.ready(),
    async snapshotAll() {
      await Promise.all([...instances.values()].map((i) => i.snapshotNow()));
    },
    async stop() {
      running = false;
      clearInterval(archiveTimer);
      // Workers hand their units over: snapshot, upload, release the leases.
      await leases?.stop();
      // Take no more input, finish what is queued, snapshot: the next start replays little.
      for (const i of instances.values()) i.stopInput();
      await Promise.all(
        [...instances.values()].map((i) =>
          i.actor.getStatus() === "running" ? i.snapshotNow().catch(() => undefined) : undefined,
        ),
      );
      await supervisor.stop();
    },
  };
}

function hostMetrics(
  m: Metrics,
  stage: string,
  partition: number,
): NonNullable<HostDeps["metrics"]> {
  const l = (stage: string, partition: number) => ({ stage, partition: String(partition) });
  // Every series from the start, at 0: a counter that first appears at its first increment
  // makes rate() and increase() queries empty or wrong (issue 18).
  m.initStage(stage, partition);
  return {
    input: (s, p, n, records) => {
      m.messagesIn.inc(l(s, p), n);
      m.eventsIn.inc(l(s, p), records);
    },
    output: (s, p, n) => m.eventsOut.inc(l(s, p), n),
    lag: (s, p, n) => m.lag.set(l(s, p), n),
    mailbox: (s, p, n) => m.mailbox.set(l(s, p), n),
    snapshot: (s, p, secs, keys) => {
      m.snapshotSeconds.observe(l(s, p), secs);
      m.snapshotKeys.inc(l(s, p), keys);
    },
    poison: (s, p) => m.poison.inc(l(s, p)),
    duplicateBatch: (s, p) => m.duplicateBatches.inc(l(s, p)),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
