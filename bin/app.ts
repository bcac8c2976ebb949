import { join } from "node:path";
import { mkdir } from "node:fs/promises";
import type { JetStreamManager, NatsConnection } from "nats";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { NatsKeeper } from "./nats-keeper.js";
import { createMetrics } from "../connectors/http/metrics.js";
import { eventsPosition, reportCatchUp } from "./catch-up.js";
import { startHttpServer, type HttpServer } from "../connectors/http/server.js";
import { openStateDb, type StateDb } from "../state/index.js";
import { startPipeline, type Pipeline } from "./pipeline/pipeline.js";
import { consumerBase, parseProcessStages } from "./pipeline/units.js";
import { whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { parentDeathPrefix } from "../connectors/nats/embedded-server.js";
import { withInputStaleness } from "./stale-backend.js";
import { requireNatsUrl, type RoleConfig } from "./role-config.js";
import type { AppConfig } from "./config.js";
import { deploymentCovisit } from "./covisit-layout.js";
import { connectWithStatus } from "./nats-connect.js";
import {
  healthBody,
  healthProblems,
  watchNats,
  watchStages,
  watchStateDb,
  type HealthCheck,
  type HealthProblem,
} from "./health.js";
import { parseSpawnGate, startParseProcess, type ParseProcess } from "./parse-process.js";
import { engineMarkerKey } from "../connectors/nats/engine-key.js";
import { envelopeCodec } from "../actors/host/index.js";
import { faultsFromEnv, type ProcessFaults } from "./test-faults.js";
import { portTaken } from "./app-ports.js";
import { keepNats, privateNats } from "./app-private-nats.js";
import { serveGrpc, serveWeb } from "./app-facade.js";
import { placeSnapshots, stageOwnership } from "./app-stage-placement.js";
import { keepStateBounded } from "./app-state-upkeep.js";

// The one-process app's parts, for importers of this module: the private nats-server, the
// façade's servers, a port's error, and the gateway role.
export { PortTakenError, portTaken } from "./app-ports.js";
export { keepNats, privateNats } from "./app-private-nats.js";
export { serveGrpc, serveWeb } from "./app-facade.js";
export { startGatewayApp, type GatewayApp } from "./app-gateway.js";

/** The longest a start waits for the blend's sources before it spawns the parse process anyway. */
const PARSE_SPAWN_WAIT_MS = 30_000;

export interface App {
  /** What the engine connects with: for the private server, its credentials are in it. */
  readonly natsUrl: string;
  readonly grpcPort: number;
  readonly metricsPort: number;
  /** The JSON/HTTP API and web console (0 for a worker, which serves neither). */
  readonly webPort: number;
  readonly webUrl: string;
  readonly pipeline: Pipeline;
  readonly nc: NatsConnection;
  /** The child process that runs parse (`reco start` with PARSE_PROCESS=1). */
  readonly parseProcess?: ParseProcess;
  /** Health problems of this process (and its parse child) and readiness, read from memory. */
  health(now: number): { problems: HealthProblem[]; ready: boolean };
  /** The metrics of this process, merged with its parse child's. */
  registry(): Registry;
  /** Drains: snapshots every stage, stops servers, closes NATS, stops the private server. */
  stop(): Promise<void>;
}

/** What startApp runs, and whom it tells of a failure once started. */
export interface StartOptions {
  onFatal?: (err: Error) => void;
  /** `start` (default): everything; `worker`: the stages its leases grant, no gRPC. */
  role?: "start" | "worker";
  /** Settings of the split roles (required for `worker`). */
  roleConfig?: RoleConfig;
  /** A test's faults (bin/test-faults.ts); default: those its environment asks for. */
  faults?: ProcessFaults;
  /**
   * false: no gRPC, JSON API or metrics listener (the ingest child of a split `reco start`,
   * bin/ingest-child.ts, whose parent serves them). Default true.
   */
  facade?: boolean;
  /**
   * Called with the backend as soon as the serving instances run, when gRPC would start to
   * answer (the ingest child answers its parent's questions from then on, as a one-process app
   * answers gRPC, instead of only once every stage runs).
   */
  onServing?: (backend: App["pipeline"]["backend"], pipeline: Pipeline) => void;
}

/**
 * Starts everything in one process: a private nats-server unless NATS_URL is set, the state
 * database, the stage actors, the gRPC façade and the metrics endpoint. On failure, whatever
 * was started is stopped again before the error is rethrown.
 */
export async function startApp(
  cfg: AppConfig,
  log: Logger,
  options: StartOptions = {},
): Promise<App> {
  const role = options.role ?? "start";
  const facade = options.facade ?? true;
  const faults = options.faults ?? faultsFromEnv(process.env);
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse())
      await c().catch((err: unknown) => log.warn({ err }, "cleanup failed"));
    cleanups.length = 0;
  };
  // A corrupt state store or a parse process that cannot run: retrying cannot help. While
  // starting, startApp rejects (rather than hang); once started, options.onFatal.
  let started = false;
  let failStart: (err: Error) => void = () => undefined;
  const startFailed = new Promise<never>((_, reject) => (failStart = reject));
  startFailed.catch(() => undefined);
  let fatalSeen = false;
  const fatal = (err: Error) => {
    if (fatalSeen) return;
    fatalSeen = true;
    if (started) options.onFatal?.(err);
    else failStart(err);
  };
  const unlessFatal = <T>(p: Promise<T>) => Promise.race([p, startFailed]);
  try {
    if (role === "worker") requireNatsUrl(cfg, role);
    await mkdir(cfg.dataDir, { recursive: true });
    // Health answers from the start ("starting"), and only reads what the checks keep up to date.
    const metrics = createMetrics();
    let registry: Registry = metrics.registry;
    const checks: HealthCheck[] = [];
    let ready = () => false;
    let natsState = () => "connecting";
    const healthNow = () =>
      healthBody(healthProblems(checks), ready(), { role, nats: natsState() });
    // What makes /livez fail: stages failing for LIVENESS_TIMEOUT_MS (filled once they exist).
    const stuckChecks: HealthCheck[] = [];
    const http: HttpServer | undefined = facade
      ? await startHttpServer({
          port: cfg.metricsPort,
          host: cfg.metricsHost,
          registry: {
            contentType: metrics.registry.contentType,
            metrics: () => registry.metrics(),
          },
          health: healthNow,
          stuck: () => healthProblems(stuckChecks),
        }).catch(portTaken("METRICS_PORT", cfg.metricsHost, cfg.metricsPort))
      : undefined;
    if (http) cleanups.push(() => http.stop());
    let natsUrl = cfg.natsUrl;
    let priv: Awaited<ReturnType<typeof privateNats>> | undefined;
    if (natsUrl === undefined) {
      priv = await privateNats(cfg, log);
      const first = priv.server;
      cleanups.push(() => (keeper ? keeper.stop() : first.stop()));
      natsUrl = priv.engineUrl;
    }
    let keeper: NatsKeeper | undefined;
    const nc = await connectWithStatus(cfg, natsUrl, `reco-${role}`, log);
    cleanups.push(() => nc.drain());
    const nats = watchNats(nc);
    cleanups.push(async () => nats.stop());
    checks.push(nats.check);
    if (priv) keeper = keepNats(priv, nats, cfg, log);
    natsState = () => (nc.isClosed() ? "closed" : nats.check(Date.now()).length ? "down" : "up");

    const statePath = join(cfg.dataDir, "state");
    const rawStateDb = await openStateDb(
      statePath,
      faults.onSnapshotWrite ? { onSnapshotWrite: faults.onSnapshotWrite } : {},
    );
    cleanups.push(() => rawStateDb.close());
    const watchedState = watchStateDb(rawStateDb, statePath, { onCorrupt: fatal });
    const stateDb: StateDb = watchedState.db;
    checks.push(watchedState.check);

    // PARSE_PROCESS=1: parse runs in a child process on the second core (bin/parse-process.ts).
    const parseApart = role === "start" && cfg.parseProcess;
    // Whether setpriv can be used for the parse process (a probe, run once): asked now, while
    // the process is small. Asked at the spawn, after the state loaded, its fork of a 1 GB
    // process held the loop that serves 237 ms (bench step 6, 1M users).
    if (parseApart) parentDeathPrefix();
    // The parse process runs these stages of every unit (PARSE_PROCESS_STAGES), this one the rest.
    const inChild = parseApart ? parseProcessStages(cfg.parseProcessStages) : new Set<string>();
    if (role === "start") await placeSnapshots(cfg, inChild, stateDb, log);
    const ownership = await stageOwnership(cfg, role, parseApart, inChild, nc, options.roleConfig);
    // Co-visitation's item partitions: the deployment's, which every process of it shares.
    const covisit = await unlessFatal(deploymentCovisit(nc, cfg));
    const pipeline = await unlessFatal(
      startPipeline(
        { ...cfg.pipeline, covisitPartitions: covisit },
        {
          nc,
          stateDb,
          metrics,
          log: (obj, msg) => log.warn(obj, msg),
          markerKey: () =>
            whenJetStreamAnswers(() => engineMarkerKey(nc, { replicas: cfg.pipeline.replicas })),
          ...(options.onFatal ? { onFatal: options.onFatal } : {}),
          ownership,
          serve: role === "start",
          host: { codec: envelopeCodec({ rows: faults.hopRows }), faults: faults.host },
        },
      ),
    );
    cleanups.push(() => pipeline.stop());
    // Catching up on stored events: events done and pending, events/s, time left.
    let progressJsm: JetStreamManager | undefined;
    const catchUp = reportCatchUp({
      position: async () => eventsPosition((progressJsm ??= await nc.jetstreamManager())),
      log,
      tty: process.stderr.isTTY ? process.stderr : undefined,
    });
    cleanups.push(async () => catchUp.stop());
    const stages = watchStages(
      pipeline.supervisor.events$,
      (id) => pipeline.supervisor.child(id)?.getStatus(),
      { failingMs: cfg.healthStageFailingMs },
    );
    cleanups.push(async () => stages.stop());
    checks.push(stages.check);
    if (cfg.livenessTimeoutMs > 0) {
      const stuck = watchStages(
        pipeline.supervisor.events$,
        (id) => pipeline.supervisor.child(id)?.getStatus(),
        { failingMs: cfg.livenessTimeoutMs, check: "stuck" },
      );
      cleanups.push(async () => stuck.stop());
      stuckChecks.push(stuck.check);
    }
    // gRPC answers as soon as the serving instances run (startPipeline returns then), before
    // anything else here: the other stages' snapshots load meanwhile and share the event loop.
    options.onServing?.(pipeline.backend, pipeline);
    // While NATS hangs or is unreachable, or snapshots cannot be written (a full disk), answers
    // still come from memory, saying since when.
    const served = withInputStaleness(pipeline.backend, (t) => [
      ...nats.check(t),
      ...watchedState.check(t),
    ]);
    const grpc =
      role === "start" && facade ? await serveGrpc(cfg, served, metrics, log) : undefined;
    if (grpc) cleanups.push(() => grpc.stop());
    // With nothing to catch up, spawned once the blend's sources run (parseSpawnGate).
    const parseProcess = parseApart
      ? startParseProcess({
          cfg,
          natsUrl,
          log,
          metrics,
          onFatal: fatal,
          spawnAfter: parseSpawnGate(
            async () => {
              const jsm = await nc.jetstreamManager();
              const c = await jsm.consumers.info(EVENTS_STREAM, consumerBase("parse", 0));
              return c.num_pending + c.num_ack_pending;
            },
            () => pipeline.sourcesRunning(),
            PARSE_SPAWN_WAIT_MS,
          ),
        })
      : undefined;
    if (parseProcess) {
      cleanups.push(() => parseProcess.stop());
      checks.push((now) => parseProcess.problems(now));
      registry = parseProcess.mergedRegistry(metrics.registry);
    }
    const web =
      role === "start" && facade
        ? await serveWeb(cfg, served, registry, log, nc, pipeline.catalogue)
        : undefined;
    if (web) cleanups.push(() => web.stop());
    // Ready (/healthz 200) once the facades listen, and from then on while the backend answers.
    ready = () => role === "worker" || pipeline.backend.isReady();
    // gRPC health follows the same checks (Check and Watch clients see NOT_SERVING).
    const grpcHealth = setInterval(() => {
      grpc?.setServing(pipeline.backend.isReady() && healthProblems(checks).length === 0);
    }, 1_000);
    cleanups.push(async () => clearInterval(grpcHealth));

    const stopCompaction = keepStateBounded(cfg.dataDir, stateDb, metrics.registry, log);
    cleanups.push(async () => {
      stopCompaction();
    });

    // "Started" means every stage runs (the ready line); gRPC has been answering meanwhile.
    await unlessFatal(pipeline.ready());
    await unlessFatal(parseProcess?.ready() ?? Promise.resolve());
    started = true;

    return {
      natsUrl,
      grpcPort: grpc?.port ?? 0,
      metricsPort: http?.port ?? 0,
      webPort: web?.port ?? 0,
      webUrl: web?.url ?? "",
      pipeline,
      nc,
      ...(parseProcess ? { parseProcess } : {}),
      health: (now) => ({ problems: healthProblems(checks, now), ready: ready() }),
      registry: () => registry,
      async stop() {
        clearInterval(grpcHealth);
        grpc?.setServing(false);
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
