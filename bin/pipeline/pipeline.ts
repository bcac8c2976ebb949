import type { PipelineConfig } from "./config.js";
import { createSupervisor } from "../../runtime/index.js";
import type { Supervisor } from "../../runtime/index.js";
import {
  createStageInstance,
  type HostDeps,
  type PoisonLedger,
  type StageHandler,
  type StageInstance,
  type StageSpec,
  membersOfStage,
  type ChainHandler,
} from "../../actors/host/index.js";
import type { StateDb } from "../../state/index.js";
import type { RecoBackend } from "../../actors/contract/index.js";
import { recommenderWiring, qualityWiring } from "../../actors/plan/index.js";
import type { ChangeFeed, CatalogueTable } from "../../actors/serving/index.js";
import { designBefore } from "../../actors/serving/index.js";
import type { Metrics } from "../../connectors/http/metrics.js";
import { ensureTopology, STREAMS, whenJetStreamAnswers } from "../../connectors/nats/topology.js";
import { ensureEventsStream, EVENTS_STREAM } from "../../connectors/nats/streams.js";
import { consumerProbe } from "../../connectors/nats/source.js";
import { natsHostTransport } from "../../connectors/nats/host-transport.js";
import type { NatsConnection } from "nats";
import { filter, firstValueFrom, Subject, takeUntil, timer } from "rxjs";
import { wireStages } from "./stages.js";
import { planPath } from "./chains.js";
import { memberInstance } from "./chain-members.js";
import { readOutsideGraph } from "../../actors/contract/index.js";
import {
  createUnits,
  START_TIERS,
  takeOwnership,
  tierOf,
  type Instances,
  type Ownership,
  startTierOfStage,
} from "./units.js";
import { startServing, type Serving } from "./serving.js";
import { createLoadTurns } from "./load-turns.js";
import { hostMetrics, stageGauges } from "./metrics.js";
import { openModelShelf } from "./model-shelf.js";

export type { LeaseOwnership, Ownership } from "./units.js";

/*
 * The pipeline: every stage instance of this process under one supervisor, on NATS. The stages'
 * wiring is in stages.ts (and the recommender's and drift's in actors/plan/*-wiring.ts), units and
 * leases in units.ts, serving in serving.ts, gauges in metrics.ts.
 */

/** The tiers of the blend's sources (units.ts START_TIERS). */
const SOURCE_TIERS: ReadonlySet<string> = new Set(["history", "covisit", "collaborative"]);

export interface Pipeline {
  readonly backend: RecoBackend;
  /** The item catalogue the backend answers with (writes wait until it shows them). */
  readonly catalogue: CatalogueTable;
  readonly supervisor: Supervisor;
  /** Stage instances by "<stage>/<partition>" (current incarnation). */
  instance(id: string): StageInstance<StageHandler> | undefined;
  /** Ids ("<stage>/<partition>") of every stage instance this process runs. */
  instanceIds(): string[];
  /** Resolves when every actor runs. */
  ready(): Promise<void>;
  /**
   * Resolves once every instance of the blend's source tiers (history, covisit, collaborative:
   * START_TIERS) runs, or the pipeline stops: what a restart's first right answers wait for.
   */
  sourcesRunning(): Promise<void>;
  /** Snapshots every instance now (used by drain and tests). */
  snapshotAll(): Promise<void>;
  /** The blend's source stages' changes, with RANKER=blend and `replicaChanges` (a replica's feed). */
  readonly blendChanges?: ChangeFeed;
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
  ownership?: Ownership;
  /**
   * Names this process's consumers of a partition's hops apart from another process's (the
   * parse process with PARSE_PROCESS_STAGES=ingest reads them too): each process's readers share
   * one consumer of their own (units.ts sharedInput).
   */
  processTag?: string;
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
  const instances: Instances = new Map();
  const P = cfg.partitions;
  // Snapshot loads run one at a time, in the order instances start (serving ones first): the
  // loads are CPU work on the event loop that serves gRPC, and forty side by side (each parsing
  // chunks between reads) held it for seconds at a time (4.5 s measured with 1M users). In turn,
  // the loop is held for one slice of one load; consumers are created as each load ends. The
  // next load's LevelDB read runs meanwhile (load-turns.ts).
  const turns = createLoadTurns();
  // Only where units start together at process start (`start`); a worker's units arrive one
  // lease at a time and load side by side as before.
  const inTurn = (deps.ownership ?? { mode: "all" }).mode !== "leases";
  const hostDeps = (stage: string, partition: number): HostDeps => {
    const snapshots = deps.stateDb.instance(stage, partition);
    return {
      ...deps.host,
      ...(inTurn
        ? {
            loadInTurn: <T>(load: () => Promise<T>) =>
              turns.run(load, () => snapshots.readAhead?.()),
          }
        : {}),
      transport,
      snapshots,
      snapshotIntervalMs: cfg.snapshotIntervalMs,
      snapshotEveryMessages: cfg.snapshotEveryMessages,
      maxAttempts: cfg.maxAttempts,
      ...(cfg.inputAlignment !== false ? { alignAhead: 0 } : {}),
      ...(metrics ? { metrics: hostMetrics(metrics, stage, partition) } : {}),
      ...(deps.log ? { log: deps.log } : {}),
      consumer: (subject) => units.consumer(stage, partition, subject),
    };
  };

  const ownership = deps.ownership ?? { mode: "all" };
  // A partition's hops are read once per process for all its readers (units.ts sharedInput).
  const units = createUnits(supervisor, instances, {
    partitions: P,
    ...(deps.processTag !== undefined ? { tag: deps.processTag } : {}),
  });
  const placedHere = (ownership.mode === "units" && ownership.stages) || (() => true);
  /**
   * Serving outlives its inputs (DESIGN §4): while a stage instance restarts (its consumer lost to
   * a hung or unreachable NATS, a full disk failing its snapshots), the incarnation before it,
   * which processed the most, keeps answering from its state in memory, until the new one runs.
   * An instance whose unit stops here (handed over, the process stopping) serves nothing.
   */
  const previous = new Map<string, StageInstance<StageHandler>>();
  const servableOwn = (id: string): StageHandler | undefined => {
    const inst = instances.get(id);
    if (inst === undefined) {
      previous.delete(id);
      return undefined;
    }
    if (inst.actor.getStatus() === "running") {
      previous.delete(id);
      return inst.handler();
    }
    // Failed and waiting for its restart, or restarting: whichever got further.
    const kept = previous.get(id);
    return inst.handler() !== undefined &&
      (kept === undefined || inst.position() >= kept.position())
      ? inst.handler()
      : kept?.handler();
  };
  /** A chained stage's id ("<stage>/<partition>") -> its chain's id and its stage. */
  const chainOf = new Map<string, { chain: string; stage: string }>();
  /** A stage instance's handler, a chain member's through its chain's (serving asks by stage). */
  const servable = (id: string): StageHandler | undefined => {
    const member = chainOf.get(id);
    if (member === undefined) return servableOwn(id);
    return (servableOwn(member.chain) as ChainHandler | undefined)?.member(member.stage);
  };
  /** An instance by id; a chain member as a view of its chain (its handler, its counts). */
  const instance = (id: string): StageInstance<StageHandler> | undefined => {
    const member = chainOf.get(id);
    if (member === undefined) return instances.get(id);
    const chain = instances.get(member.chain);
    return chain && memberInstance(chain, member.stage);
  };
  const run = <H extends StageHandler>(spec: StageSpec<H>) => {
    // Another process of this `reco start` runs it (PARSE_PROCESS=1: units.ts).
    const members = membersOfStage(spec.stage);
    if (!members.every(placedHere)) return;
    const id = `${spec.stage}/${spec.partition}`;
    if (members.length > 1)
      for (const stage of members) chainOf.set(`${stage}/${spec.partition}`, { chain: id, stage });
    const ledger: PoisonLedger = new Map();
    const d = hostDeps(spec.stage, spec.partition);
    units.register(units.unitOf(spec.stage, spec.partition), id, () =>
      supervisor.supervise(id, () => {
        // The incarnation it replaces, if it got further than the one kept so far.
        const before = instances.get(id);
        const kept = previous.get(id);
        if (
          before?.handler() !== undefined &&
          (kept === undefined || before.position() >= kept.position())
        )
          previous.set(id, before);
        const inst = createStageInstance(spec, d, ledger);
        instances.set(id, inst as unknown as StageInstance<StageHandler>);
        return inst.actor;
      }),
    );
  };

  wireStages(cfg, {
    run,
    path: (specs) => {
      const rule = {
        chaining: cfg.chaining ?? true,
        placedHere,
        published: readOutsideGraph,
        tierOf: startTierOfStage,
      };
      for (const spec of planPath(specs, rule)) run(spec);
    },
    // The server's view of parse's consumer (named by units.consumer, as the host's).
    idleProbe: consumerProbe(jsm, EVENTS_STREAM, () => units.consumer("parse", 0, "events.>").name),
    ...(metrics ? { metrics } : {}),
    ...(deps.log ? { log: deps.log } : {}),
    ...(deps.markerKey ? { markerKey: deps.markerKey } : {}),
  });
  // Drift, prequential scoring, A/B arms (DESIGN §7; actors/plan/quality-wiring.ts).
  // The design ranking as served, for the scorer's design arm (serving starts below).
  const served: Partial<Pick<Serving, "designTop" | "designTaken">> = {};
  const quality = qualityWiring(cfg, {
    stream: STREAMS.hops,
    run,
    live: (id) => {
      const inst = instances.get(id);
      return inst?.actor.getStatus() === "running" ? inst.handler() : undefined;
    },
    ...(metrics ? { registry: metrics.registry } : {}),
    design: designBefore(
      (user, item, ts) => served.designTaken?.(user, item, ts) ?? false,
      (user, n) => served.designTop?.(user, n),
    ),
  });
  // --- The recommender stage and the blend (RANKER=blend; actors/plan/recommender-wiring.ts) ---
  const shelf = await openModelShelf(deps.stateDb, deps.log);
  // The trainer starts here with its unit at process start: its shelved models serve until then.
  const trainerUnit = units.unitOf("collaborative-trainer", 0);
  const serveFirst =
    ownership.mode === "all" ||
    (ownership.mode === "units" &&
      ownership.units.includes(trainerUnit) &&
      placedHere("collaborative-trainer"));
  const ranker = recommenderWiring(
    { ...cfg, pairsBatching: { maxRecords: cfg.batchMaxRecords, maxDelayMs: cfg.pairsMaxDelayMs } },
    {
      shelf: { shelf, serveFirst },
      stream: STREAMS.hops,
      blendArm: quality.blendArm,
      ...(quality.scorer ? { scorer: quality.scorer } : {}),
      ...(deps.log ? { log: deps.log } : {}),
      ...(metrics ? { registry: metrics.registry } : {}),
      run,
      live: servable,
    },
  );
  // --- end recommender ---

  const serving = startServing(cfg, {
    nc,
    supervisor,
    units,
    ranker,
    servable,
    ...(quality.armOf ? { armOf: quality.armOf } : {}),
    serve: deps.serve ?? true,
  });
  served.designTop = serving.designTop;
  served.designTaken = serving.designTaken;
  const owner = await takeOwnership(ownership, {
    units,
    instances,
    stateDb: deps.stateDb,
    nc,
    replicas: cfg.replicas,
    partitions: P,
    ...(deps.log ? { log: deps.log } : {}),
  });
  if (metrics) stageGauges(metrics, instances, supervisor, deps.log);

  for (const unit of owner.fixedUnits) units.start(unit, "serving");
  await supervisor.ready();
  serving.setRunning(true);
  for (const tier of START_TIERS.slice(1))
    for (const unit of owner.fixedUnits) units.start(unit, tier);
  const stopped$ = new Subject<void>();
  let sources: Promise<void> | undefined;
  // Polled: an instance restarted by its supervisor is a new actor under the same id.
  const sourcesRunning = () =>
    (sources ??= firstValueFrom(
      timer(0, 50).pipe(
        filter(() =>
          [...instances].every(
            ([id, i]) => !SOURCE_TIERS.has(tierOf(id)) || i.actor.getStatus() === "running",
          ),
        ),
        takeUntil(stopped$),
      ),
      { defaultValue: 0 },
    ).then(() => undefined));
  return {
    backend: serving.backend,
    catalogue: serving.catalogue,
    ...(ranker.changes ? { blendChanges: ranker.changes } : {}),
    supervisor,
    instance,
    instanceIds: () => [...instances.keys()],
    ready: () => supervisor.ready(),
    sourcesRunning,
    async snapshotAll() {
      await Promise.all([...instances.values()].map((i) => i.snapshotNow()));
    },
    async stop() {
      stopped$.next();
      serving.setRunning(false);
      // Workers hand their units over: snapshot, upload, release the leases.
      await owner.stop();
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
