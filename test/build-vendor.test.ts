import { afterEach, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build as esbuild } from "esbuild";
import type * as Rx from "rxjs";
// @ts-expect-error: a JavaScript module without types (bin/build.mjs)
import { vendor, VENDOR } from "../bin/build.mjs";

/**
 * Rxjs's `node` export is its
 * CommonJS build, whose index requires ~300 modules at every start (~100-120 ms of CPU), and
 * @bufbuild/protobuf's ES build is ~60 files; the build bundles them and points the compiled
 * files' imports there.
 */
describe("the build's vendored packages", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("point every compiled import of rxjs at a bundled ES module that works", async () => {
    expect(Object.keys(VENDOR as Record<string, string>)).toContain("rxjs");
    dir = await mkdtemp(join(tmpdir(), "reco-vendor-"));
    await mkdir(join(dir, "actors", "sub"), { recursive: true });
    const file = join(dir, "actors", "sub", "stage.js");
    await writeFile(
      file,
      'import { map, of, lastValueFrom } from "rxjs";\n' +
        'import { x } from "rxjs-not-this";\n' +
        "export const run = () => lastValueFrom(of(2).pipe(map((v) => v * 21)));\n",
    );
    await (vendor as (b: typeof esbuild, out: string) => Promise<void>)(esbuild, dir);
    const text = await readFile(file, "utf8");
    expect(text).toContain('from "../../vendor/rxjs.js"');
    expect(text).toContain('from "rxjs-not-this"');
    expect(text).not.toMatch(/from "rxjs"/);
    // No package left to load: the bundle imports its own chunks at most (rxjs and tslib inside).
    const bundled = await readFile(join(dir, "vendor", "rxjs.js"), "utf8");
    for (const m of bundled.matchAll(/^import .* from "([^"]+)"/gm))
      expect(m[1]).toMatch(/^\.\/chunk-/);
    expect(bundled).not.toMatch(/require\(/);
    const rx = (await import(pathToFileURL(join(dir, "vendor", "rxjs.js")).href)) as typeof Rx;
    await expect(rx.lastValueFrom(rx.of(2).pipe(rx.map((v) => v * 21)))).resolves.toBe(42);
    expect(typeof rx.Observable).toBe("function");
  });

  it("bundle the entries of one package around shared chunks: one copy of its code", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-vendor-"));
    await mkdir(join(dir, "gen"), { recursive: true });
    const file = join(dir, "gen", "x.js");
    await writeFile(
      file,
      'import { create, toBinary, fromBinary } from "@bufbuild/protobuf";\n' +
        'import { TimestampSchema } from "@bufbuild/protobuf/wkt";\n' +
        "export const roundTrip = (seconds) =>\n" +
        "  fromBinary(TimestampSchema, toBinary(TimestampSchema, create(TimestampSchema, { seconds })));\n",
    );
    await (vendor as (b: typeof esbuild, out: string) => Promise<void>)(esbuild, dir);
    const text = await readFile(file, "utf8");
    expect(text).toContain('from "../vendor/@bufbuild/protobuf.js"');
    expect(text).toContain('from "../vendor/@bufbuild/protobuf/wkt.js"');
    const root = await readFile(join(dir, "vendor", "@bufbuild", "protobuf.js"), "utf8");
    const wkt = await readFile(join(dir, "vendor", "@bufbuild", "protobuf", "wkt.js"), "utf8");
    const chunks = (t: string) => new Set(t.match(/chunk-[A-Z0-9]+\.js/g) ?? []);
    // wkt's messages are built with the root's code: the two import the same chunk.
    expect([...chunks(wkt)].some((c) => chunks(root).has(c))).toBe(true);
    const x = (await import(pathToFileURL(file).href)) as {
      roundTrip: (s: bigint) => { seconds: bigint };
    };
    expect(x.roundTrip(42n).seconds).toBe(42n);
  });
});
