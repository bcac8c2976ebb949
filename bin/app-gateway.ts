import type { Logger } from "pino";
import { createMetrics } from "../connectors/http/metrics.js";
import { startHttpServer } from "../connectors/http/server.js";
import { ensureTopology, whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { withCatalogue } from "../actors/serving/index.js";
import { startGateway } from "./pipeline/gateway.js";
import { requireNatsUrl, type RoleConfig } from "./role-config.js";
import type { AppConfig } from "./config.js";
import { connectWithStatus } from "./nats-connect.js";
import { healthBody, healthProblems, watchNats } from "./health.js";
import { serveGrpc, serveWeb } from "./app-facade.js";
import { portTaken } from "./app-ports.js";

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
