import { join } from "node:path";
import { mkdir } from "node:fs/promises";
import type { NatsConnection } from "nats";
import { Gauge } from "prom-client";
import type { Logger } from "pino";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { connectNats } from "../connectors/nats/connection.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/index.js";
import { createMetrics } from "../connectors/http/metrics.js";
import { startHttpServer, type HttpServer } from "../connectors/http/server.js";
import { openStateDb, type StateDb } from "../state/index.js";
import { startPipeline, type Pipeline } from "../actors/pipeline.js";
import type { AppConfig } from "./config.js";

export interface App {
  readonly natsUrl: string;
  readonly grpcPort: number;
  readonly metricsPort: number;
  readonly pipeline: Pipeline;
  readonly nc: NatsConnection;
  /** Drains: snapshots every stage, stops servers, closes NATS, stops the private server. */
  stop(): Promise<void>;
}

/**
 * Starts everything in one process: a private nats-server unless NATS_URL is set, the state
 * database, the stage actors, the gRPC façade and the metrics endpoint. On failure, whatever
 * was started is stopped again before the error is rethrown.
 */
export async function startApp(
  cfg: AppConfig,
  log: Logger,
  options: { onFatal?: (err: Error) => void } = {},
): Promise<App> {
  const cleanups: (() => Promise<unknown>)[] = [];
  const cleanup = async () => {
    for (const c of cleanups.reverse())
      await c().catch((err: unknown) => log.warn({ err }, "cleanup failed"));
    cleanups.length = 0;
  };
  try {
    await mkdir(cfg.dataDir, { recursive: true });
    let natsUrl = cfg.natsUrl;
    let embedded: EmbeddedNats | undefined;
    if (natsUrl === undefined) {
      embedded = await startEmbeddedNats({
        port: cfg.natsPort,
        storeDir: join(cfg.dataDir, "nats"),
        detached: true,
      });
      cleanups.push(() => embedded!.stop());
      natsUrl = embedded.url;
      log.info({ url: natsUrl, natsPid: embedded.pid }, "started private nats-server");
    }
    const nc = await connectNats({
      servers: natsUrl,
      name: "reco-stream",
      ...(cfg.natsUser !== undefined ? { user: cfg.natsUser } : {}),
      ...(cfg.natsPass !== undefined ? { pass: cfg.natsPass } : {}),
      ...(cfg.natsToken !== undefined ? { token: cfg.natsToken } : {}),
      ...(cfg.natsCreds !== undefined ? { credsFile: cfg.natsCreds } : {}),
      tls: { caFile: cfg.natsTlsCa, certFile: cfg.natsTlsCert, keyFile: cfg.natsTlsKey },
    });
    cleanups.push(() => nc.drain());
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error")
          log.warn({ type: s.type, data: String(s.data) }, "nats connection status");
      }
    })();

    const stateDb: StateDb = await openStateDb(join(cfg.dataDir, "state"));
    cleanups.push(() => stateDb.close());

    const metrics = createMetrics();
    const pipeline = await startPipeline(cfg.pipeline, {
      nc,
      stateDb,
      metrics,
      log: (obj, msg) => log.warn(obj, msg),
      ...(options.onFatal ? { onFatal: options.onFatal } : {}),
    });
    cleanups.push(() => pipeline.stop());

    // State stays bounded on disk too: compact periodically so deleted keys free their space,
    // and report the store's size.
    let stateBytes = await stateDb.sizeBytes();
    new Gauge({
      name: "reco_state_bytes",
      help: "Bytes of the LevelDB state store on disk",
      registers: [metrics.registry],
      collect() {
        this.set(stateBytes);
      },
    });
    const compactEvery = 10 * 60_000;
    const sizeTimer = setInterval(() => {
      void stateDb.sizeBytes().then(
        (b) => (stateBytes = b),
        () => undefined,
      );
    }, 30_000);
    const compactTimer = setInterval(() => {
      const t0 = Date.now();
      void stateDb.compact().then(
        () => log.debug({ ms: Date.now() - t0 }, "state compacted"),
        (err: unknown) => log.warn({ err: String(err) }, "state compaction failed"),
      );
    }, compactEvery);
    cleanups.push(async () => {
      clearInterval(sizeTimer);
      clearInterval(compactTimer);
    });

    const grpc: GrpcServer = await startGrpcServer({
      port: cfg.grpcPort,
      host: cfg.grpcHost,
      backend: pipeline.backend,
      registry: metrics.registry,
      logger: log,
      maxMessageBytes: cfg.grpcMaxMessageBytes,
      ...(cfg.grpcTlsCert && cfg.grpcTlsKey
        ? { tls: { certFile: cfg.grpcTlsCert, keyFile: cfg.grpcTlsKey } }
        : {}),
    });
    cleanups.push(() => grpc.stop());
    grpc.setServing(true);

    const http: HttpServer = await startHttpServer({
      port: cfg.metricsPort,
      registry: metrics.registry,
      health: () => ({
        ok: pipeline.backend.isReady() && !nc.isClosed(),
        detail: { nats: nc.isClosed() ? "closed" : "connected", ready: pipeline.backend.isReady() },
      }),
    });
    cleanups.push(() => http.stop());

    return {
      natsUrl,
      grpcPort: grpc.port,
      metricsPort: http.port,
      pipeline,
      nc,
      async stop() {
        grpc.setServing(false);
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
