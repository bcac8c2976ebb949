import type { GrpcServerOptions } from "./options.js";
import { readFile } from "node:fs/promises";
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { ServerShuttingDownError } from "./errors.js";
import { createGrpcMetrics, transportErrorInterceptor } from "./metrics.js";
import { recoServiceDefinition, reflectionPackageDefinition, SERVICE_NAME } from "./codec.js";
import { createRecoService } from "./service.js";
import { addLazyHealth, addLazyReflection } from "./lazy-services.js";

export { recoServiceDefinition, TrendingWindowNotFoundError } from "./codec.js";

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
