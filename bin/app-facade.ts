import type { NatsConnection } from "nats";
import type { Logger } from "pino";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/index.js";
import { startApiServer, type ApiServer } from "../connectors/http/api.js";
import type { Metrics } from "../connectors/http/metrics.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { createItemWrites } from "../connectors/nats/item-writes.js";
import type { RecoBackend } from "../actors/contract/index.js";
import type { CatalogueTable } from "../actors/serving/index.js";
import type { AppConfig } from "./config.js";
import { portTaken } from "./app-ports.js";

/** The gRPC façade, serving from the moment it listens. */
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
