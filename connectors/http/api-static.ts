import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import fastifyStatic, { type SetHeadersResponse } from "@fastify/static";
import type { FastifyInstance } from "fastify";

/**
 * The web console's files: `web/` of this package, and the chart library from its npm package
 * (`/vendor/…`), so the console works offline, with no CDN and no build step.
 */
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json; charset=utf-8",
};

/** `web/` beside the sources (tsx) or one level further up (compiled into dist/). */
export function defaultWebRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ["../../web", "../../../web"]) {
    const dir = join(here, up);
    if (existsSync(join(dir, "index.html"))) return normalize(dir);
  }
  return normalize(join(here, "../../web"));
}

const require = createRequire(import.meta.url);

/**
 * Serves the files of `root` (`/` is its index.html) and the chart library. One route per file,
 * found at start (the files ship with the package and do not change while it runs): any other
 * path, `..` included, reaches no file and is the API's 404. Revalidated at every load (no-cache)
 * without validators, so a new version of the package is seen at once.
 */
export async function serveConsole(app: FastifyInstance, root: string): Promise<void> {
  const options = {
    wildcard: false,
    etag: false,
    lastModified: false,
    acceptRanges: false,
    cacheControl: false,
    contentType: false,
    setHeaders: (res: SetHeadersResponse, path: string) => {
      res.setHeader("content-type", TYPES[extname(path)] ?? "application/octet-stream");
      res.setHeader("cache-control", "no-cache");
      res.setHeader("x-content-type-options", "nosniff");
    },
  };
  // Without web/ (a trimmed image), the API and the chart library are still served.
  await app.register(
    fastifyStatic,
    existsSync(root) ? { ...options, root } : { ...options, serve: false },
  );
  const uplot = dirname(require.resolve("uplot/dist/uPlot.esm.js"));
  for (const [path, file] of [
    ["/vendor/uplot.esm.js", "uPlot.esm.js"],
    ["/vendor/uplot.min.css", "uPlot.min.css"],
  ] as const)
    app.get(path, { schema: { hide: true } }, (_req, reply) => reply.sendFile(file, uplot));
}
