#!/usr/bin/env node
// Compiles the app's TypeScript sources to dist/ (one JavaScript file per source, no type
// checking: `npm run typecheck` does that), then bundles the process entries (BUNDLED: the app's,
// the parse child's and the split's ingest child's) into one module each. Node then starts from
// JavaScript instead of tsx compiling every module at every start, which was ~0.6–1.2 s of a
// restart (bench step 6), and from one file instead of ~400.
//
//   node bin/build.mjs           build if any source is newer than the last build (npm postinstall)
//   node bin/build.mjs --force   build anyway
//
// esbuild (tsx's own compiler) transpiles the ~100 files in ~0.2–0.5 s, so the build runs at
// install (postinstall) and before `npm start` and the bench. `reco` (bin/reco.mjs) only reads
// dist/ when it is not older than the sources, and never builds: several `reco` processes start
// at once in tests, and a read-only image must start too.
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const distDir = join(root, "dist");
// What the app imports at run time (tests and bench stay on tsx/vitest).
const SOURCE_DIRS = ["actors", "runtime", "connectors", "state", "proto/gen", "bin"];
/**
 * Packages that dist/ imports from bundled ES modules (dist/vendor/<specifier>.js, their shared
 * code in chunks beside them), by import specifier: the file bundled (in node_modules). Loading a
 * package as hundreds of modules costs more than their code: rxjs's `node` export is its CommonJS
 * build, whose index requires every operator's module (~300 files), ~100-120 ms of CPU at every
 * start (bench step 6's process start), ~10 ms as one file; @bufbuild/protobuf's ES build is
 * ~60 files (~90-130 ms, ~30 bundled). Only packages that no other run-time package imports: a
 * second copy beside a package's own would be a second set of classes.
 */
export const VENDOR = {
  rxjs: "rxjs/dist/esm/index.js",
  "@bufbuild/protobuf": "@bufbuild/protobuf/dist/esm/index.js",
  "@bufbuild/protobuf/codegenv2": "@bufbuild/protobuf/dist/esm/codegenv2/index.js",
  "@bufbuild/protobuf/wkt": "@bufbuild/protobuf/dist/esm/wkt/index.js",
};
// Written last: its time is the build's, and its absence means an unfinished build.
const STAMP = join(distDir, ".built");

function sources() {
  const files = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(ts|mts)$/.test(e.name) && !/\.d\.m?ts$/.test(e.name)) files.push(p);
    }
  };
  for (const d of SOURCE_DIRS) walk(join(root, d));
  return files;
}

/** True when dist/ is missing or older than a source file (a stat per source: ~2 ms). */
export function isStale(files = sources()) {
  if (!existsSync(STAMP)) return true;
  const built = statSync(STAMP).mtimeMs;
  return files.some((f) => statSync(f).mtimeMs > built);
}

/**
 * Compiles every source afresh (a removed source leaves no stale module behind) into a new
 * directory that then replaces dist/, so a process starting meanwhile sees the old or the new
 * build, not half of one.
 */
export async function build() {
  const files = sources();
  const { build: esbuild } = await import("esbuild");
  const next = `${distDir}.new-${process.pid}`;
  const old = `${distDir}.old-${process.pid}`;
  rmSync(next, { recursive: true, force: true });
  mkdirSync(next, { recursive: true });
  await esbuild({
    entryPoints: files,
    outdir: next,
    outbase: root,
    format: "esm",
    platform: "node",
    target: "node20",
    bundle: false,
    // Beside each file (read only with --enable-source-maps), so loading costs nothing extra.
    sourcemap: true,
    logLevel: "warning",
  });
  await vendor(esbuild, next);
  await bundleEntries(esbuild, next);
  writeFileSync(join(next, ".built"), `${new Date().toISOString()}\n`);
  if (existsSync(distDir)) renameSync(distDir, old);
  renameSync(next, distDir);
  rmSync(old, { recursive: true, force: true });
  return files.length;
}

/**
 * Bundles the VENDOR entries into `<out>/vendor/` and points the compiled files' imports of them
 * there (`from "rxjs"` becomes `from "../vendor/rxjs.js"`, on the same line: the source maps stay
 * right).
 */
export async function vendor(esbuild, out, entries = VENDOR) {
  const files = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".js")) files.push(p);
    }
  };
  walk(out);
  const dir = join(out, "vendor");
  await esbuild({
    // By path: a package's exports map need not name the file (rxjs's does not).
    entryPoints: Object.fromEntries(
      Object.entries(entries).map(([name, file]) => [name, join(root, "node_modules", file)]),
    ),
    outdir: dir,
    // Entries of one package share its code (one set of classes), in chunks.
    splitting: true,
    chunkNames: "chunk-[hash]",
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    logLevel: "warning",
  });
  const pattern = /(\bfrom\s*|\bimport\s*)"([^"]+)"/g;
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    const next = text.replace(pattern, (whole, head, spec) => {
      if (!Object.hasOwn(entries, spec)) return whole;
      const rel = relative(dirname(f), join(dir, `${spec}.js`))
        .split("\\")
        .join("/");
      return `${head}"${rel.startsWith(".") ? rel : `./${rel}`}"`;
    });
    if (next !== text) writeFileSync(f, next);
  }
}

/**
 * Process entries (compiled files under dist/) that the build replaces by one ES module holding
 * them, the app's modules they import and the packages those import: a restart's process start
 * was mostly module loading (resolving, reading and compiling ~400 files). Import of
 * dist/bin/main.js, three pairs at load 15-17: 421-497 ms of CPU before, 145-150 ms as one file.
 * The other compiled files stay beside them: the ALS worker thread, the CLI's commands and the
 * tests load those.
 */
export const BUNDLED = ["bin/main.js", "bin/parse-child.js", "bin/ingest-child.js"];
/**
 * Packages left to node's loader (none now). Native addons (classic-level, msgpackr-extract) are
 * bundled too: their loaders find the binary from the package's `__dirname`, which the bundle
 * keeps (bundleEntries), and require it with node's own require.
 */
export const BUNDLE_EXTERNAL = [];

/**
 * Bundles each BUNDLED entry of `out` in place. A bundled module's `import.meta.url` becomes its
 * compiled file's URL (relative to the bundle's), and a CommonJS package module's `__dirname`
 * and `__filename` its own, so files found beside a module (the console's assets, the parse
 * child's entry, grpc-js's protos) are found as before. Source maps chain to the sources.
 */
export async function bundleEntries(esbuild, out, entries = BUNDLED) {
  const toUrl = (from, file) => {
    const rel = relative(from, file).split("\\").join("/");
    return JSON.stringify(rel.startsWith(".") ? rel : `./${rel}`);
  };
  for (const entry of entries) {
    const file = join(out, entry);
    const dir = dirname(file);
    const tmp = `${file}.bundle-${process.pid}.js`;
    const here = {
      name: "reco-here",
      setup(b) {
        b.onLoad({ filter: /\.(c|m)?js$/ }, (args) => {
          let text = readFileSync(args.path, "utf8");
          const inPackage = /[\\/]node_modules[\\/]/.test(args.path);
          if (!inPackage && text.includes("import.meta.url"))
            text = text.replaceAll(
              "import.meta.url",
              `new URL(${toUrl(dir, args.path)}, import.meta.url).href`,
            );
          else if (inPackage && /\b__(dirname|filename)\b/.test(text))
            text =
              `var __filename = __recoPath(${toUrl(dir, args.path)}), ` +
              `__dirname = __recoPath(${toUrl(dir, dirname(args.path))}); ` +
              text;
          return { contents: text, loader: "js", resolveDir: dirname(args.path) };
        });
      },
    };
    await esbuild({
      entryPoints: [file],
      outfile: tmp,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      external: BUNDLE_EXTERNAL,
      plugins: [here],
      // CommonJS packages call require (esbuild's shim uses this one) and name their directory.
      banner: {
        js:
          'import { createRequire as __recoRequire } from "node:module";\n' +
          'import { fileURLToPath as __recoFile } from "node:url";\n' +
          "const require = __recoRequire(import.meta.url);\n" +
          "const __recoPath = (rel) => __recoFile(new URL(rel, import.meta.url));",
      },
      sourcemap: true,
      logLevel: "warning",
    });
    renameSync(`${tmp}.map`, `${file}.map`);
    // The map's name inside the bundle is the temporary file's.
    const text = readFileSync(tmp, "utf8").replace(
      /\/\/# sourceMappingURL=\S+\s*$/,
      `//# sourceMappingURL=${basename(file)}.map\n`,
    );
    writeFileSync(file, text);
    rmSync(tmp);
  }
}

/**
 * Builds when stale. Returns false when dist/ cannot be used (no sources to build from, esbuild
 * missing, a read-only file system): the caller then runs the sources through tsx.
 */
export async function ensureBuilt() {
  try {
    if (isStale()) await build();
    return true;
  } catch (err) {
    process.stderr.write(
      `reco: cannot build dist/ (${String(err)}); running the sources with tsx\n`,
    );
    return false;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const force = process.argv.includes("--force");
  if (sources().length === 0) {
    // npm ci in a Docker layer that has only package.json and proto/: nothing to build yet.
    console.log("reco build: no sources yet, skipped");
  } else if (force || isStale()) {
    const t = performance.now();
    const n = await build();
    console.log(`reco build: ${n} files -> dist/ in ${(performance.now() - t).toFixed(0)} ms`);
  }
}
