import { mkdir } from "node:fs/promises";
import type { Logger } from "pino";
import { createMetrics } from "../connectors/http/metrics.js";
import { startHttpServer } from "../connectors/http/server.js";
import { ensureTopology, whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { startGateway } from "./pipeline/gateway.js";
import { createSplitBackend } from "./pipeline/split-backend.js";
import type { RecoBackend } from "../actors/backend.js";
import type { AppConfig } from "./config.js";
import type { RoleConfig } from "./role-config.js";
import { connectWithStatus } from "./nats-connect.js";
import { healthBody, healthProblems, watchNats, type HealthProblem } from "./health.js";
import { privateNats, serveGrpc, serveWeb } from "./app.js";
import { startParseProcess, type ChildKind, type ParseProcess } from "./parse-process.js";

export interface ServingApp {
  readonly natsUrl: string;
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly webPort: number;
  readonly webUrl: string;
  readonly backend: RecoBackend;
  /** The child that runs every stage (bin/ingest-child.ts), restarted when it dies. */
  readonly ingest: ParseProcess;
  stop(): Promise<void>;
}

/**
 * `reco start` with SERVE_PROCESS=1 (the default): this process serves gRPC, the JSON API, the
 * console, /metrics and /healthz, and runs no stage. Its event loop only answers: the design
 * ranking, trending and item rows from replicas fed by JetStream (the gateway role's,
 * bin/pipeline/gateway.ts), blended answers from the ingest process
 * (bin/pipeline/split-backend.ts). The stages run in a child process (bin/ingest-child.ts: the
 * single-process app without its façade, with the parse process below it) started at
 * INGEST_NICE, so the kernel gives serving the CPU first when both want it. The child dies with
 * this process (PR_SET_PDEATHSIG) and is restarted by it when it dies alone; answers go on from
 * the replicas meanwhile, with their staleness, and /healthz says the ingest process is down.
 */
export async function startServingApp(
  cfg: AppConfig,
  roleConfig: RoleConfig,
  log: Logger,
  options: { onFatal?: (err: Error) => void } = {},
): Promise<ServingApp> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse())
      await c().catch((err: unknown) => log.warn({ err }, "cleanup failed"));
    cleanups.length = 0;
  };
  // The ingest process cannot run (a corrupt state store): while starting, startServingApp
  // rejects with its reason; once started, options.onFatal (as startApp does).
  let started = false;
  let failStart: (err: Error) => void = () => undefined;
  const startFailed = new Promise<never>((_, reject) => (failStart = reject));
  startFailed.catch(() => undefined);
  const fatal = (err: Error) => (started ? options.onFatal?.(err) : failStart(err));
  try {
    await mkdir(cfg.dataDir, { recursive: true });
    const metrics = createMetrics();
    let checks: ((now: number) => HealthProblem[])[] = [];
    let ready = () => false;
    let registry = metrics.registry as { metrics(): Promise<string> };
    const http = await startHttpServer({
      port: cfg.metricsPort,
      host: cfg.metricsHost,
      registry: { contentType: metrics.registry.contentType, metrics: () => registry.metrics() },
      health: () =>
        healthBody(healthProblems(checks), ready(), { role: "start", serving: "process" }),
    });
    cleanups.push(() => http.stop());
    let natsUrl = cfg.natsUrl;
    if (natsUrl === undefined) {
      const priv = await privateNats(cfg, log);
      cleanups.push(() => priv.server.stop());
      natsUrl = priv.engineUrl;
    }
    const nc = await connectWithStatus(cfg, natsUrl, "reco-serve", log);
    cleanups.push(() => nc.drain());
    const nats = watchNats(nc);
    cleanups.push(async () => nats.stop());
    checks = [nats.check];
    const jsm = await nc.jetstreamManager();
    const topology = {
      replicas: cfg.pipeline.replicas,
      duplicateWindowMs: cfg.pipeline.duplicateWindowMs,
    };
    await whenJetStreamAnswers(async () => {
      await ensureEventsStream(jsm, topology);
      await ensureTopology(nc, jsm, topology);
    });
    // A user's profile moving in the replica (their events reached the stages) drops the
    // blended answers kept for them (bin/pipeline/split-backend.ts).
    let userChanged = (_user: string) => undefined as void;
    const gateway = await startGateway(
      nc,
      { ...cfg.pipeline, maxStalenessMs: roleConfig.maxStalenessMs },
      (obj, msg) => log.warn(obj, msg),
      (user) => userChanged(user),
    );
    cleanups.push(() => gateway.stop());

    const kind: ChildKind = {
      id: "ingest-process",
      entry: "ingest-child",
      label: "ingest",
      nice: cfg.ingestNice,
    };
    const ingest = startParseProcess({
      cfg,
      natsUrl,
      log,
      metrics,
      kind,
      // Its stages' final snapshots: as long as a drain of the single-process app may take.
      graceMs: roleConfig.stopTimeoutMs,
      onFatal: fatal,
    });
    cleanups.push(() => ingest.stop());
    registry = ingest.mergedRegistry(metrics.registry);
    let down = Date.now();
    checks.push((now) => {
      const out = ingest.problems(now);
      // Truthful while it (re)starts: the answers come from replicas that stopped moving.
      if (ingest.running()) down = 0;
      else {
        if (down === 0) down = now;
        out.push({
          check: kind.id,
          reason: "the ingest process is (re)starting: answers come from the replicas meanwhile",
          since: down,
        });
      }
      return out;
    });
    const backend = createSplitBackend({
      replica: gateway.backend,
      ask: (op, args, timeoutMs) => ingest.ask(op, args, timeoutMs),
      forward: cfg.pipeline.ranker === "blend" || (cfg.pipeline.arms?.length ?? 0) > 0,
      waitMs: cfg.serveBlendWaitMs,
      maxInFlight: 256,
      keptAnswers: 32_768,
      keptMaxAgeMs: cfg.serveBlendMaxAgeMs,
      maxRefreshes: 16,
      registry: metrics.registry,
    });
    userChanged = (user) => backend.userChanged(user);
    ready = () => backend.isReady();
    const grpc = await serveGrpc(cfg, backend, metrics, log);
    cleanups.push(() => grpc.stop());
    const grpcHealth = setInterval(() => {
      grpc.setServing(backend.isReady() && healthProblems(checks).length === 0);
    }, 1_000);
    cleanups.push(async () => clearInterval(grpcHealth));
    const web = await serveWeb(cfg, backend, registry, log);
    cleanups.push(() => web.stop());
    // "Started" means every stage runs, as in one process (the ready line); serving answers
    // from the replicas meanwhile.
    await Promise.race([ingest.ready(), startFailed]);
    started = true;
    return {
      natsUrl,
      grpcPort: grpc.port,
      metricsPort: http.port,
      webPort: web.port,
      webUrl: web.url,
      backend,
      ingest,
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
