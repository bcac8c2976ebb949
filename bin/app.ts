import { join } from "node:path";
import { mkdir, readdir, stat } from "node:fs/promises";
import type { JetStreamManager, NatsConnection } from "nats";
import { Gauge, type Registry } from "prom-client";
import type { Logger } from "pino";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { freeBytes, keepPrivateNats, NATS_MIN_FREE_BYTES, type NatsKeeper } from "./nats-keeper.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/index.js";
import { createMetrics } from "../connectors/http/metrics.js";
import { eventsPosition, reportCatchUp } from "./catch-up.js";
import { startHttpServer, type HttpServer } from "../connectors/http/server.js";
import { startApiServer, type ApiServer } from "../connectors/http/api.js";
import { openStateDb, type StateDb } from "../state/index.js";
import { startPipeline, type Pipeline, type PipelineDeps } from "./pipeline/pipeline.js";
import { startGateway } from "./pipeline/gateway.js";
import { consumerBase, parseProcessStages } from "./pipeline/units.js";
import {
  carrySnapshotsOver,
  USER_PATH,
  userPathBefore,
  userPathInstances,
} from "./pipeline/plan-snapshots.js";
import { openSnapshotArchive } from "../state/archive.js";
import { ensureTopology, whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ensureEventsStream, EVENTS_STREAM } from "../connectors/nats/streams.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { withInputStaleness } from "./stale-backend.js";
import type { RecoBackend } from "../actors/contract/index.js";
import type { CatalogueTable } from "../actors/serving/index.js";
import { withCatalogue } from "../actors/serving/index.js";
import { createItemWrites } from "../connectors/nats/item-writes.js";
import type { Metrics } from "../connectors/http/metrics.js";
import { requireNatsUrl, type RoleConfig } from "./role-config.js";
import { ConfigError, type AppConfig } from "./config.js";
import { connectWithStatus } from "./nats-connect.js";
import { publisherFile, startPrivateNats } from "./private-nats.js";
import {
  healthBody,
  healthProblems,
  watchNats,
  watchStages,
  watchStateDb,
  type HealthCheck,
  type HealthProblem,
  type NatsWatch,
} from "./health.js";
import {
  moveParseSnapshot,
  parseSpawnGate,
  startParseProcess,
  type ParseProcess,
} from "./parse-process.js";
import { engineMarkerKey } from "../connectors/nats/engine-key.js";
import { envelopeCodec } from "../actors/host/index.js";
import { faultsFromEnv, type ProcessFaults } from "./test-faults.js";

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

/**
 * Starts everything in one process: a private nats-server unless NATS_URL is set, the state
 * database, the stage actors, the gRPC façade and the metrics endpoint. On failure, whatever
 * was started is stopped again before the error is rethrown.
 */
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
    // The parse process runs these stages of every unit (PARSE_PROCESS_STAGES), this one the rest.
    const inChild = parseApart ? parseProcessStages(cfg.parseProcessStages) : new Set<string>();
    // The user path's instances here and in the parse process: chains of the stages each runs.
    const userPath = userPathInstances(cfg.pipeline.chaining ?? true, (stage) =>
      inChild.has(stage) ? "child" : "main",
    );
    if (role === "start") {
      const wanted = userPath.map((i) => i.stage);
      const before = await userPathBefore(cfg.dataDir);
      const replanned = before.join(",") !== wanted.join(",");
      const pathStages = new Set<string>([...before, ...wanted]);
      await moveParseSnapshot(
        stateDb,
        cfg.dataDir,
        new Set([
          ...[...inChild].filter((s) => !(USER_PATH as readonly string[]).includes(s)),
          ...userPath.filter((i) => i.place === "child").map((i) => i.stage),
        ]),
        cfg.pipeline.partitions,
        {
          bringBack: (s) => replanned && pathStages.has(s),
          whileHere: () =>
            carrySnapshotsOver(stateDb, cfg.dataDir, wanted, cfg.pipeline.partitions, (obj, msg) =>
              log.warn(obj, msg),
            ),
        },
      );
    }
    let ownership: PipelineDeps["ownership"] = parseApart
      ? {
          mode: "units",
          units: Array.from({ length: cfg.pipeline.partitions }, (_, p) => `p${p}`),
          stages: (stage) => !inChild.has(stage),
        }
      : { mode: "all" };
    if (role === "worker") {
      const rc = options.roleConfig;
      if (!rc)
        throw new ConfigError("the worker role needs its settings (WORKER_ID, LEASE_TTL_MS)");
      ownership = {
        mode: "leases",
        workerId: rc.workerId,
        leaseTtlMs: rc.leaseTtlMs,
        archive: await whenJetStreamAnswers(() =>
          openSnapshotArchive(nc, { replicas: cfg.pipeline.replicas }),
        ),
        archiveEveryMs: rc.archiveIntervalMs,
      };
    }
    const pipeline = await unlessFatal(
      startPipeline(cfg.pipeline, {
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
      }),
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
    ready = () => role === "worker" || pipeline.backend.isReady();
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
    // gRPC health follows the same checks (Check and Watch clients see NOT_SERVING).
    const grpcHealth = setInterval(() => {
      grpc?.setServing(pipeline.backend.isReady() && healthProblems(checks).length === 0);
    }, 1_000);
    cleanups.push(async () => clearInterval(grpcHealth));

    // State stays bounded on disk too: compact periodically so deleted keys free their space,
    // and report the store's size.
    // Measured at each scrape (at most once a second): a size refreshed every 30 s read 246
    // bytes with 2.7 MB on disk after a replay. The parse process's store counts too.
    let sized = { at: -Infinity, bytes: 0 };
    new Gauge({
      name: "reco_state_bytes",
      help: "Bytes of the LevelDB state stores on disk (DATA_DIR/state and state-parse)",
      registers: [metrics.registry],
      async collect() {
        if (Date.now() - sized.at >= 1_000) {
          const dirs = [join(cfg.dataDir, "state"), join(cfg.dataDir, "state-parse")];
          const sizes = await Promise.all(dirs.map((d) => dirBytes(d)));
          sized = { at: Date.now(), bytes: sizes.reduce((a, b) => a + b, 0) };
        }
        this.set(sized.bytes);
      },
    });
    const compactEvery = 10 * 60_000;
    const compactTimer = setInterval(() => {
      const t0 = Date.now();
      void stateDb.compact().then(
        () => log.debug({ ms: Date.now() - t0 }, "state compacted"),
        (err: unknown) => log.warn({ err: String(err) }, "state compaction failed"),
      );
    }, compactEvery);
    cleanups.push(async () => {
      clearInterval(compactTimer);
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

/**
 * The private nats-server (NATS_URL unset), with credentials kept in DATA_DIR; publishers get
 * theirs from nats-publisher.json. It dies with this process.
 */
/** The private nats-server, restarted when the NATS watch says it has stopped answering. */
export function keepNats(
  priv: { server: EmbeddedNats; startAgain: () => Promise<EmbeddedNats> },
  nats: NatsWatch,
  cfg: AppConfig,
  log: Logger,
): NatsKeeper {
  return keepPrivateNats({
    first: priv.server,
    start: priv.startAgain,
    notAnsweringSince: () => {
      const problem = nats
        .check(Date.now())
        .find((x) => x.check === "nats" || x.check === "jetstream");
      return problem && { since: problem.since, why: problem.reason };
    },
    restartAfterMs: cfg.natsRestartAfterMs,
    hasRoom: () => freeBytes(join(cfg.dataDir, "nats")) >= NATS_MIN_FREE_BYTES,
    log,
  });
}

export async function privateNats(
  cfg: AppConfig,
  log: Logger,
): Promise<{
  server: EmbeddedNats;
  engineUrl: string;
  /** Starts it again, on the same port, store and monitoring port. */
  startAgain: () => Promise<EmbeddedNats>;
}> {
  let monitorPort = cfg.natsMonitorPort;
  const priv = await startPrivateNats({
    dataDir: cfg.dataDir,
    port: cfg.natsPort,
    monitorPort,
  })
    .catch((err: unknown) => {
      // Monitoring is an aid: a busy port (a second instance, another program on 8222) must
      // not stop the engine. Started again without it, and said so.
      if (!monitorPort || !/monitor port/.test(String((err as Error)?.message))) throw err;
      log.warn(
        { monitorPort },
        "nats-server monitoring port busy: running without it (set NATS_MONITOR_PORT)",
      );
      monitorPort = 0;
      return startPrivateNats({ dataDir: cfg.dataDir, port: cfg.natsPort, monitorPort: 0 });
    })
    .catch(portTaken("NATS_PORT", "127.0.0.1", cfg.natsPort));
  log.info(
    {
      url: priv.server.url,
      publisher: publisherFile(cfg.dataDir),
      natsPid: priv.server.pid,
      ...(monitorPort ? { monitor: `http://127.0.0.1:${monitorPort}` } : {}),
    },
    "started private nats-server",
  );
  const startAgain = async () =>
    (await startPrivateNats({ dataDir: cfg.dataDir, port: priv.server.port, monitorPort })).server;
  return { ...priv, startAgain };
}

/**
 * A port that another program holds, as one line naming the port and the setting: a start that
 * fails on it says what to change, not "EADDRINUSE" or grpc-js's "No address added".
 */
export class PortTakenError extends Error {
  override readonly name = "PortTakenError";
  constructor(setting: string, host: string, port: number) {
    super(
      `${setting}=${port} is taken: another program listens on ${host}:${port}; set ${setting} to a free port (0: any free one)`,
    );
  }
}

/** Rethrows `err` as a PortTakenError when it says the address is in use. */
export function portTaken(setting: string, host: string, port: number) {
  return (err: unknown): never => {
    const text = err instanceof Error ? err.message : String(err);
    if (/EADDRINUSE|address already in use/i.test(text))
      throw new PortTakenError(setting, host, port);
    throw err;
  };
}

export async function serveGrpc(
  cfg: AppConfig,
  backend: RecoBackend,
  metrics: Metrics,
  log: Logger,
): Promise<GrpcServer> {
  const grpc = await startGrpcServer({
    keepTrendingFinals: true,
    port: cfg.grpcPort,
    host: cfg.grpcHost,
    backend,
    registry: metrics.registry,
    logger: log,
    maxMessageBytes: cfg.grpcMaxMessageBytes,
    ...(cfg.grpcTlsCert && cfg.grpcTlsKey
      ? { tls: { certFile: cfg.grpcTlsCert, keyFile: cfg.grpcTlsKey } }
      : {}),
  }).catch(portTaken("GRPC_PORT", cfg.grpcHost, cfg.grpcPort));
  grpc.setServing(true);
  return grpc;
}

/**
 * The JSON/HTTP API and web console, next to gRPC, from the same backend; with `nc`, events posted
 * to it are published to JetStream as a NATS publisher's would be.
 */
export function serveWeb(
  cfg: AppConfig,
  backend: RecoBackend,
  registry: { metrics(): Promise<string> } | undefined,
  log: Logger,
  nc?: NatsConnection,
  catalogue?: CatalogueTable,
): Promise<ApiServer> {
  const events = nc ? createJetStreamPublisher(nc, { timeoutMs: 5_000, retries: 2 }) : undefined;
  const upsertItem = events && catalogue ? createItemWrites(events, catalogue) : undefined;
  return startApiServer({
    port: cfg.webPort,
    host: cfg.webHost,
    portFallback: cfg.webPortFallback,
    corsOrigins: cfg.webCorsOrigins,
    apiKeys: cfg.apiKeys,
    ...(events
      ? {
          publishEvent: async (subject: string, data: Uint8Array, msgId: string) => ({
            duplicate: (await events.publish(subject, data, { msgId })).duplicate,
          }),
        }
      : {}),
    ...(upsertItem ? { upsertItem } : {}),
    backend,
    ...(registry ? { metrics: registry } : {}),
    logger: log,
  }).catch(portTaken("WEB_PORT", cfg.webHost, cfg.webPort));
}

export interface GatewayApp {
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly webPort: number;
  readonly webUrl: string;
  stop(): Promise<void>;
}

/**
 * Role `gateway`: the gRPC façade only, answering from a replica of every partition's profiles
 * and the broadcast tables, so it keeps answering while partitions move between workers.
 */
export async function startGatewayApp(
  cfg: AppConfig,
  roleConfig: RoleConfig,
  log: Logger,
): Promise<GatewayApp> {
  const natsUrl = requireNatsUrl(cfg, "gateway");
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  };
  try {
    const nc = await connectWithStatus(cfg, natsUrl, "reco-gateway", log);
    cleanups.push(() => nc.drain());
    const nats = watchNats(nc);
    cleanups.push(async () => nats.stop());
    const jsm = await nc.jetstreamManager();
    const topology = {
      replicas: cfg.pipeline.replicas,
      duplicateWindowMs: cfg.pipeline.duplicateWindowMs,
    };
    await whenJetStreamAnswers(async () => {
      await ensureEventsStream(jsm, topology);
      await ensureTopology(nc, jsm, topology);
    });
    log.debug("gateway: streams and buckets ready");
    const gateway = await startGateway(
      nc,
      { ...cfg.pipeline, maxStalenessMs: roleConfig.maxStalenessMs },
      (obj, msg) => log.warn(obj, msg),
    );
    cleanups.push(() => gateway.stop());
    const backend = withCatalogue(gateway.backend, gateway.catalogue);
    const metrics = createMetrics();
    const grpc = await serveGrpc(cfg, backend, metrics, log);
    cleanups.push(() => grpc.stop());
    const grpcHealth = setInterval(() => {
      grpc.setServing(gateway.backend.isReady() && healthProblems([nats.check]).length === 0);
    }, 1_000);
    cleanups.push(async () => clearInterval(grpcHealth));
    // A gateway runs no stages: its console shows answers and trending, no pipeline.
    const web = await serveWeb(cfg, backend, undefined, log, nc, gateway.catalogue);
    cleanups.push(() => web.stop());
    const http = await startHttpServer({
      port: cfg.metricsPort,
      host: cfg.metricsHost,
      registry: metrics.registry,
      health: () =>
        healthBody(healthProblems([nats.check]), gateway.backend.isReady(), { role: "gateway" }),
    }).catch(portTaken("METRICS_PORT", cfg.metricsHost, cfg.metricsPort));
    cleanups.push(() => http.stop());
    return {
      grpcPort: grpc.port,
      metricsPort: http.port,
      webPort: web.port,
      webUrl: web.url,
      async stop() {
        clearInterval(grpcHealth);
        grpc.setServing(false);
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Bytes of the files under `dir`; 0 when it does not exist. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p);
    else total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
