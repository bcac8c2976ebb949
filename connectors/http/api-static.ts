import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { HttpError } from "./api-errors.js";

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
/** Files served from npm packages, by URL path. */
const VENDOR: Record<string, () => string> = {
  "/vendor/uplot.esm.js": () => require.resolve("uplot/dist/uPlot.esm.js"),
  "/vendor/uplot.min.css": () => require.resolve("uplot/dist/uPlot.min.css"),
};

export function createStaticFiles(root: string) {
  const cache = new Map<string, Buffer>();
  const load = async (file: string): Promise<Buffer> => {
    let body = cache.get(file);
    if (!body) {
      body = await readFile(file);
      // The files ship with the package and do not change while it runs.
      cache.set(file, body);
    }
    return body;
  };
  return {
    /** The console file at URL `path` with its headers; undefined if there is none. */
    async read(
      path: string,
    ): Promise<{ body: Buffer; headers: Record<string, string> } | undefined> {
      let file: string;
      const vendor = VENDOR[path];
      if (vendor) file = vendor();
      else {
        let rel: string;
        try {
          rel = path === "/" ? "index.html" : decodeURIComponent(path).slice(1);
        } catch {
          return undefined; // not valid percent-encoding: no such file
        }
        file = normalize(join(root, rel));
        // Only files under root: `..` or an encoded separator never reaches outside.
        if (!file.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
        if (!TYPES[extname(file)]) return undefined;
        const st = await stat(file).catch(() => undefined);
        if (!st?.isFile()) return undefined;
      }
      const body = await load(file).catch(() => {
        throw new HttpError(404, "NOT_FOUND", `no such file: ${path}`);
      });
      return {
        body,
        headers: {
          "content-type": TYPES[extname(file)] ?? "application/octet-stream",
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
        },
      };
    },
  };
}
