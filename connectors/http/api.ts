import type { ApiServerOptions } from "./api-options.js";
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyReply,
  type FastifyRequest,
} from "fastify";
import cors from "@fastify/cors";
import swagger from "@fastify/swagger";
import { keepIdleConnections } from "./keep-alive.js";
import { fromFramework, HttpError, notFound, pathOf, toErrorResponse } from "./api-errors.js";
import { requireApiKey } from "./api-events.js";
import { openApiOptions } from "./api-openapi.js";
import { normaliseQuery, schemaError } from "./api-params.js";
import { addRoutes } from "./api-routes.js";
import { defaultWebRoot, serveConsole } from "./api-static.js";
import { createTrendingHistory } from "./api-trending.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** A write, as its error names it: it needs a key of API_KEYS wherever the server listens. */
    write?: string;
  }
}

const LOOPBACK = new Set(["127.0.0.1", "::1", "localhost"]);

export interface ApiServer {
  readonly port: number;
  /** The console's address, for the ready line. */
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * The JSON/HTTP API and the web console (DESIGN §5) on Fastify: each route's JSON schema checks
 * its request and feeds the OpenAPI document; the rules that matter (the id and option rules, the
 * error mapping, latest-wins streaming) are shared with the gRPC façade or written out here.
 */
export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  const { backend } = o;
  const host = o.host ?? "127.0.0.1";
  const origins = o.corsOrigins ?? [];
  const history = createTrendingHistory(backend);
  const streams = new Set<() => void>();
  const apiKeys = o.apiKeys ?? [];
  // Reads stay open on loopback: only this machine can reach them there.
  const readsKeyed = apiKeys.length > 0 && !LOOPBACK.has(host);

  const sendError = (err: unknown, req: FastifyRequest, reply: FastifyReply) => {
    const { status, body, headers } = toErrorResponse(err);
    // A bug (500) goes to the log with its detail; the client gets a short message.
    if (status === 500)
      req.log.warn({ err: String(err), path: req.url.split("?")[0] }, "HTTP API request failed");
    if (reply.sent || reply.raw.headersSent) return void reply.raw.destroy();
    // Set here too: a URL Fastify refused is answered before any hook runs.
    return reply
      .code(status)
      .headers({ "cache-control": "no-store", ...headers })
      .send(body);
  };

  const app = Fastify({
    ...(o.logger
      ? {
          // Fastify's own info line (the address it listens on) would repeat the ready line.
          loggerInstance: o.logger.child(
            {},
            { level: o.logger.isLevelEnabled("warn") ? "warn" : o.logger.level },
          ) as FastifyBaseLogger,
        }
      : {}),
    // The API logged no request lines before Fastify; a line per request would flood the log.
    logController: new LogController({ disableRequestLogging: true }),
    // Ids may be up to 128 characters, percent-encoded three times that: longer ones are a 400
    // naming the field, not an unknown route.
    routerOptions: { maxParamLength: 4096 },
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, allowUnionTypes: true } },
    frameworkErrors: (err, req, reply) => sendError(fromFramework(err, req.url), req, reply),
  });
  keepIdleConnections(app.server);
  // Schemas of answers document them; answers are written whole, never cut to a schema.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.setErrorHandler((err: FastifyError, req, reply) =>
    sendError(err.validation ? schemaError(err, req) : fromFramework(err, req.url), req, reply),
  );

  await app.register(cors, {
    // Unset: preflights are answered, but no origin is allowed (the browser's same-origin rule).
    origin: origins.includes("*") ? "*" : [...origins],
    methods: ["GET", "HEAD", "POST", "PUT", "OPTIONS"],
    allowedHeaders: [
      "content-type",
      "last-event-id",
      "authorization",
      "x-api-key",
      "idempotency-key",
    ],
    maxAge: 600,
    strictPreflight: false,
  });
  // After CORS, so a preflight is answered without a key.
  app.addHook("onRequest", async (req) => {
    const write = req.routeOptions.config.write;
    if (write !== undefined) requireApiKey(req.headers, apiKeys, write);
    else if (
      readsKeyed &&
      (req.method === "GET" || req.method === "HEAD") &&
      req.url.startsWith("/v1/")
    )
      requireApiKey(req.headers, apiKeys, "this API");
  });
  app.addHook("preValidation", async (req) => normaliseQuery(req));
  // Answers are computed afresh at every request; the console's files say their own.
  app.addHook("onSend", async (_req, reply) => {
    if (String(reply.getHeader("content-type")).startsWith("application/json"))
      if (!reply.hasHeader("cache-control")) reply.header("cache-control", "no-store");
  });

  await app.register(swagger, openApiOptions);
  app.get("/openapi.json", { schema: { hide: true } }, () => app.swagger());
  addRoutes(app, o, { history, streams });
  await serveConsole(app, o.webRoot ?? defaultWebRoot());
  // No route: what the method or path should have been.
  app.setNotFoundHandler(async (req) => {
    const path = pathOf(req.url);
    if (req.method === "POST")
      throw new HttpError(405, "METHOD_NOT_ALLOWED", `POST is not allowed on ${path}: use GET`, {
        allow: "GET, HEAD, OPTIONS",
      });
    if (req.method !== "GET" && req.method !== "HEAD")
      throw new HttpError(405, "METHOD_NOT_ALLOWED", `${req.method} is not allowed: use GET`, {
        allow: "GET, HEAD, POST, OPTIONS",
      });
    throw notFound(req.url);
  });

  try {
    await app.listen({ port: o.port, host });
  } catch (err) {
    if (!o.portFallback || (err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    await app.listen({ port: 0, host });
  }
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : o.port;
  return {
    port,
    url: `http://${host === "0.0.0.0" || host === "::" ? "localhost" : host.includes(":") ? `[${host}]` : host}:${port}/`,
    stop: async () => {
      history.stop();
      for (const close of [...streams]) close();
      await app.close();
    },
  };
}
