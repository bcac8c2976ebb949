import { keepIdleConnections } from "./keep-alive.js";
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HealthReport {
  ok: boolean;
  detail: Record<string, unknown>;
}

export interface HttpServerOptions {
  port: number;
  host?: string;
  /** What /metrics serves (a getter may swap the registry after the server started). */
  registry: Pick<Registry, "metrics" | "contentType">;
  /** Read at every /healthz request: it must answer from memory, never wait for I/O. */
  health: () => HealthReport;
  /**
   * Why the process can no longer make progress by itself (empty: it can), read at every /livez
   * request. Absent: alive while it answers.
   */
  stuck?: () => readonly { reason: string }[];
}

export interface HttpServer {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * Serves `/metrics` (Prometheus text format), `/healthz` (200 when healthy, 503 otherwise, with a
 * JSON body: `status`, and the `reason` and `problems` when not) and `/livez` (200 while the
 * process answers and is not stuck; 503 with the reason once it is).
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET") {
      res.writeHead(405).end();
      return;
    }
    if (url === "/metrics") {
      options.registry
        .metrics()
        .then((text) =>
          res.writeHead(200, { "content-type": options.registry.contentType }).end(text),
        )
        .catch((err: unknown) => res.writeHead(500).end(String(err)));
      return;
    }
    // Liveness: the process answers and is not stuck. Not health: restarting it would not bring
    // NATS or disk space back (a Kubernetes liveness probe on /healthz would restart pods for
    // that); but a process whose stages have failed for LIVENESS_TIMEOUT_MS is no longer expected
    // to get out by itself, and a restart is the way out that is left.
    if (url === "/livez") {
      const stuck = options.stuck?.() ?? [];
      res
        .writeHead(stuck.length === 0 ? 200 : 503, { "content-type": "application/json" })
        .end(
          JSON.stringify(
            stuck.length === 0
              ? { status: "alive" }
              : { status: "stuck", reason: stuck[0]!.reason, problems: stuck },
          ),
        );
      return;
    }
    if (url === "/healthz") {
      const h = options.health();
      res
        .writeHead(h.ok ? 200 : 503, { "content-type": "application/json" })
        .end(JSON.stringify({ status: h.ok ? "ok" : "unavailable", ...h.detail }));
      return;
    }
    res
      .writeHead(404, { "content-type": "text/plain" })
      .end("not found: try /metrics, /healthz or /livez\n");
  });
  keepIdleConnections(server);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === "object" && addr ? addr.port : options.port,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
