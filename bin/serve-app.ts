import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Gauge } from "prom-client";
import type { Logger } from "pino";
import { createMetrics } from "../connectors/http/metrics.js";
import { startHttpServer } from "../connectors/http/server.js";
import { ensureTopology, whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { startGateway } from "./pipeline/gateway.js";
import { createSplitBackend } from "./pipeline/split-backend.js";
import { createArms } from "../actors/quality/index.js";
import { createBlendReplica, withCatalogue, UNREPLICATED_MAPS } from "../actors/serving/index.js";
import { copyMaps } from "../actors/stages/index.js";
import type { RecoBackend } from "../actors/contract/index.js";
import type { AppConfig } from "./config.js";
import type { RoleConfig } from "./role-config.js";
import { connectWithStatus } from "./nats-connect.js";
import { healthBody, healthProblems, watchNats, type HealthProblem } from "./health.js";
import { keepNats, portTaken, privateNats, serveGrpc, serveWeb } from "./app.js";
import type { NatsKeeper } from "./nats-keeper.js";
import { deploymentCovisit } from "./covisit-layout.js";
import {
  openUnlocked,
  startParseProcess,
  type ChildKind,
  type ParseProcess,
} from "./parse-process.js";
import type { BlendReplica } from "../actors/serving/index.js";

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
 * `reco start` with SERVE_PROCESS=1 (opt-in; 0 is the default): this process serves gRPC, the JSON
 * API, the console, /metrics and /healthz, and runs no stage. Its event loop only answers: the
 * design ranking, trending and item rows from replicas fed by JetStream (the gateway role's,
 * bin/pipeline/gateway.ts), blended answers from a replica of the blend's source stages that the
 * ingest process feeds over the IPC channel (actors/serving/blend-replica.ts,
 * bin/pipeline/split-backend.ts). The stages run in a child process (bin/ingest-child.ts: the
 * single-process app without its façade, with the parse process below it) started at INGEST_NICE,
 * so the kernel gives serving the CPU first when both want it. The child dies with this process
 * (PR_SET_PDEATHSIG) and is restarted by it when it dies alone; answers go on from the replicas
 * meanwhile, with their staleness, and /healthz says the ingest process is down.
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
    }).catch(portTaken("METRICS_PORT", cfg.metricsHost, cfg.metricsPort));
    cleanups.push(() => http.stop());
    let natsUrl = cfg.natsUrl;
    let priv: Awaited<ReturnType<typeof privateNats>> | undefined;
    let keeper: NatsKeeper | undefined;
    if (natsUrl === undefined) {
      priv = await privateNats(cfg, log);
      const first = priv.server;
      cleanups.push(() => (keeper ? keeper.stop() : first.stop()));
      natsUrl = priv.engineUrl;
    }
    const nc = await connectWithStatus(cfg, natsUrl, "reco-serve", log);
    cleanups.push(() => nc.drain());
    const nats = watchNats(nc);
    cleanups.push(async () => nats.stop());
    checks = [nats.check];
    if (priv) keeper = keepNats(priv, nats, cfg, log);
    const jsm = await nc.jetstreamManager();
    const topology = {
      replicas: cfg.pipeline.replicas,
      duplicateWindowMs: cfg.pipeline.duplicateWindowMs,
    };
    await whenJetStreamAnswers(async () => {
      await ensureEventsStream(jsm, topology);
      await ensureTopology(nc, jsm, topology);
    });
    // Co-visitation's item partitions: the deployment's, for the replica and the ingest process.
    const covisitPartitions = await deploymentCovisit(nc, cfg);
    cfg = { ...cfg, pipeline: { ...cfg.pipeline, covisitPartitions } };
    // The blend's source stages, replicated from the ingest process (RANKER=blend or an A/B arm
    // that blends): blended answers are computed here, never asked of the ingest process.
    const arms = cfg.pipeline.arms?.length ? createArms(cfg.pipeline.arms) : undefined;
    const blendByDefault = cfg.pipeline.ranker === "blend";
    // The ingest process feeding the blend's replica, once it is started below.
    let feeder: () => number | undefined = () => undefined;
    const blend =
      blendByDefault || arms?.arms.some((a) => a.ranker === "blend")
        ? createBlendReplica({
            preset: cfg.pipeline.preset,
            partitions: cfg.pipeline.partitions,
            covisitPartitions,
            ...(cfg.pipeline.answerMaxAgeMs ? { answerMaxAgeMs: cfg.pipeline.answerMaxAgeMs } : {}),
            feeder: () => feeder(),
          })
        : undefined;

    const kind: ChildKind = {
      id: "ingest-process",
      entry: "ingest-child",
      label: "ingest",
      nice: cfg.ingestNice,
      // The blend's changes carry covisit's neighbour lists as bytes.
      serialization: "advanced",
    };
    let reads = 0;
    const ingest = startParseProcess({
      cfg,
      natsUrl,
      log,
      metrics,
      kind,
      // Before each ingest process: the replica reads the sources' snapshots itself, so the
      // child's first runs of them send no dump.
      ...(blend
        ? {
            beforeSpawn: async () => ({
              replicaBases: await readSourceSnapshots(cfg, blend, `${++reads}`, log),
            }),
          }
        : {}),
      onMessage: (m) => {
        if (m.type === "blend") blend?.apply(m.chunk);
        else if (m.type === "blend-idle") blend?.noteCaughtUp(Date.now());
      },
      // Its stages' final snapshots: as long as a drain of the single-process app may take.
      graceMs: roleConfig.stopTimeoutMs,
      onFatal: fatal,
    });
    cleanups.push(() => ingest.stop());
    // Its pid, undefined from its exit on: a new ingest process (or none) leaves the replica as
    // of the last time it was caught up, from the first answer after the exit, until the new
    // one has sent what it holds.
    feeder = () => ingest.pid();
    // After the ingest process is on its way (its spawn waits for the replica's read of the
    // sources' snapshots): the gateway's replicas load from JetStream on this loop meanwhile.
    const gateway = await startGateway(
      nc,
      { ...cfg.pipeline, maxStalenessMs: roleConfig.maxStalenessMs },
      (obj, msg) => log.warn(obj, msg),
    );
    cleanups.push(() => gateway.stop());
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
    const split = createSplitBackend({
      replica: gateway.backend,
      blend,
      blendByDefault,
      ...(arms ? { armOf: (user: string) => arms.armOf(user) } : {}),
      row: gateway.table.row,
      rowsVersion: () => gateway.table.version,
      topCategories: (user) => gateway.topCategories(user),
      registry: metrics.registry,
    });
    const backend = withCatalogue(split, gateway.catalogue);
    if (blend)
      new Gauge({
        name: "reco_blend_replica",
        help: "The serving process's replica of the blend's source stages (SERVE_PROCESS=1): ready (1 once every source has been received), staleness_ms (0 while it has everything the ingest process had), keys held, chunks of changes applied, blended answers served from its memo (memo_hits) and computed (memo_misses), of the hits those served by ANSWER_MAX_AGE_MS although what they read had changed (memo_aged)",
        labelNames: ["name"] as const,
        registers: [metrics.registry],
        collect() {
          const st = blend.stats();
          const staleness = blend.stalenessMs(Date.now());
          this.set({ name: "ready" }, blend.isReady() ? 1 : 0);
          this.set({ name: "staleness_ms" }, Number.isFinite(staleness) ? staleness : -1);
          this.set({ name: "keys" }, st.keys);
          this.set({ name: "chunks" }, st.chunks);
          this.set({ name: "memo_hits" }, st.memoHits);
          this.set({ name: "memo_misses" }, st.memoMisses);
          this.set({ name: "memo_aged" }, st.memoAged);
        },
      });
    const grpc = await serveGrpc(cfg, backend, metrics, log);
    cleanups.push(() => grpc.stop());
    const grpcHealth = setInterval(() => {
      grpc.setServing(backend.isReady() && healthProblems(checks).length === 0);
    }, 1_000);
    cleanups.push(async () => clearInterval(grpcHealth));
    const web = await serveWeb(cfg, backend, registry, log, nc, gateway.catalogue);
    cleanups.push(() => web.stop());
    // Ready (/healthz 200, what a readiness probe routes traffic on) once gRPC and the JSON API
    // both listen, and from then on while the backend can answer.
    ready = () => backend.isReady();
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

/**
 * Reads the blend's source stages' snapshots (history per partition, covisit, collaborative)
 * from the state store the ingest process is about to open (a LevelDB is one process's at a
 * time: read, closed, then the child is spawned), with the store's own load (cold records kept
 * as bytes, decoded when read), into the replica. Returns a token per instance read, for the
 * child: its first run of each starts from that snapshot and sends no dump. A read that fails
 * (the store locked past the wait, say) gives no token: the child dumps as before.
 */
async function readSourceSnapshots(
  cfg: AppConfig,
  blend: BlendReplica,
  read: string,
  log: Logger,
): Promise<Record<string, string>> {
  const t0 = performance.now();
  const ids = blend.instances;
  const tokens: Record<string, string> = {};
  try {
    const db = await openUnlocked(join(cfg.dataDir, "state"));
    try {
      const prefix = `${process.pid}.${Date.now().toString(36)}.${read}`;
      const skip = new Set([
        ...UNREPLICATED_MAPS,
        ...Array.from({ length: cfg.pipeline.partitions }, (_, p) =>
          Object.values(copyMaps(p)),
        ).flat(),
      ]);
      for (const id of ids) {
        const [stage, p] = id.split("/") as [string, string];
        // Without the maps no answer reads (the change stream leaves them out too): at 1M users
        // covisit's users' last items and collaborative's marked matrix, ~half the read.
        const state = await db.instance(stage, Number(p)).load({ skipMaps: skip });
        tokens[id] = `${prefix}.${id}`;
        blend.adoptBase(id, tokens[id], state);
      }
    } finally {
      await db.close();
    }
  } catch (err) {
    // Those read before the failure stand (nothing wrote them since); the others are dumped.
    log.warn(
      { err: String(err) },
      "the blend sources' snapshots could not all be read: the ingest process sends the rest",
    );
    return tokens;
  }
  log.info(
    { ms: Math.round(performance.now() - t0), instances: ids.length },
    "read the blend sources' snapshots for the replica",
  );
  return tokens;
}
