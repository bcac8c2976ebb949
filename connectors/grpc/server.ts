import { readFile } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import type { Registry } from "prom-client";
import { type RecoBackend } from "../../actors/contract/backend.js";
import { ServerShuttingDownError } from "./errors.js";
import { createGrpcMetrics, transportErrorInterceptor } from "./metrics.js";
import { recoServiceDefinition, reflectionPackageDefinition, SERVICE_NAME } from "./codec.js";
import { createRecoService } from "./service.js";
import { addLazyHealth, addLazyReflection } from "./lazy-services.js";

export { recoServiceDefinition, TrendingWindowNotFoundError } from "./codec.js";

export interface GrpcServerOptions {
  /** 0 picks a free port (read it back from `GrpcServer.port`). */
  port: number;
  /** Interface to bind; default `127.0.0.1`. `0.0.0.0` serves every interface. */
  host?: string;
  backend: RecoBackend;
  /**
   * If given, the server registers `grpc_requests_total{method,code}`,
   * `grpc_request_duration_seconds{method}` (for streams: the stream's lifetime),
   * `grpc_trending_subscribers` and `grpc_trending_dropped_updates_total` in it.
   */
  registry?: Registry;
  /** PEM files; insecure (plaintext) when absent. */
  tls?: { certFile: string; keyFile: string };
  /**
   * `grpc.max_receive_message_length`: a larger request is refused by grpc-js with
   * RESOURCE_EXHAUSTED before it is decoded. Default 64 KiB (our requests are a few hundred bytes;
   * GRPC_MAX_MESSAGE_BYTES).
   */
  maxMessageBytes?: number;
  /** Open StreamTrending calls at most; one more gets RESOURCE_EXHAUSTED. Default 10,000. */
  maxTrendingStreams?: number;
  /**
   * A StreamTrending call that was sent nothing for this long gets a heartbeat (the newest list
   * again, `heartbeat` set). Default 10 s.
   */
  trendingHeartbeatMs?: number;
  /**
   * Keep the finals of past trending windows from the start (for GetTrending's `at`): the server
   * then holds a subscription per window kind. Default false: kept from the first GetTrending
   * call on. The app sets it.
   */
  keepTrendingFinals?: boolean;
  logger?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export interface GrpcServer {
  /** The bound port (the real one when `port: 0` was asked). */
  readonly port: number;
  /** Sets the health status of "" and `reco.v1.RecommendationService` to SERVING / NOT_SERVING. */
  setServing(serving: boolean): void;
  /**
   * Reports NOT_SERVING, ends open trending streams with UNAVAILABLE, lets unary calls in flight
   * finish for up to `graceMs` (default 5000), then closes every connection. Never rejects.
   */
  stop(graceMs?: number): Promise<void>;
}

export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const host = options.host ?? "127.0.0.1";
  const { logger } = options;
  const metrics = createGrpcMetrics(options.registry);
  const service = createRecoService({
    backend: options.backend,
    metrics,
    maxTrendingStreams: options.maxTrendingStreams ?? 10_000,
    trendingHeartbeatMs: options.trendingHeartbeatMs ?? 10_000,
    keepTrendingFinals: options.keepTrendingFinals ?? false,
    ...(logger ? { logger } : {}),
  });

  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes ?? 64 * 1024,
    // grpc-js's own statuses for malformed requests: the right code, and counted.
    interceptors: [transportErrorInterceptor(metrics)],
  });
  server.addService(recoServiceDefinition, service.handlers);

  // Their libraries load at their first call (lazy-services.ts): not on a restart's way.
  const health = addLazyHealth(server, { "": "SERVING", [SERVICE_NAME]: "SERVING" });
  addLazyReflection(server, reflectionPackageDefinition);

  const credentials = options.tls
    ? ServerCredentials.createSsl(
        null,
        [
          {
            cert_chain: await readFile(options.tls.certFile),
            private_key: await readFile(options.tls.keyFile),
          },
        ],
        false,
      )
    : ServerCredentials.createInsecure();
  const target = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${target}:${options.port}`, credentials, (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  logger?.info({ host, port, tls: Boolean(options.tls) }, "gRPC server listening");

  const setServing = (serving: boolean): void => {
    const value = serving ? "SERVING" : "NOT_SERVING";
    health.setStatus("", value);
    health.setStatus(SERVICE_NAME, value);
  };

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 5000): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      setServing(false);
      service.stop();
      service.abortStreams(new ServerShuttingDownError());
      let resolved = false;
      const stopped = (forced: boolean): void => {
        if (resolved) return;
        resolved = true;
        clearTimeout(timer);
        logger?.info({ port, forced }, "gRPC server stopped");
        resolve();
      };
      // Health watchers and stuck clients would hold a graceful shutdown open forever.
      const timer = setTimeout(() => {
        server.forceShutdown();
        stopped(true);
      }, graceMs);
      server.tryShutdown(() => stopped(false));
    });
    return stopping;
  };

  return { port, setServing, stop };
}
