import { afterEach, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build as esbuild } from "esbuild";
// @ts-expect-error: a JavaScript module without types (bin/build.mjs)
import { bundleEntries, BUNDLED, BUNDLE_EXTERNAL } from "../bin/build.mjs";

type Bundle = (b: typeof esbuild, out: string, entries?: string[]) => Promise<void>;

/**
 * The process entries are built
 * into one ES module each, which must still find the files beside the modules it holds.
 */
describe("the build's bundled process entries", () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("hold the app's modules and packages, and find files beside each as before", async () => {
    expect(BUNDLED as string[]).toContain("bin/main.js");
    expect(BUNDLE_EXTERNAL as string[]).not.toContain("classic-level");
    dir = await mkdtemp(join(tmpdir(), "reco-bundle-"));
    await mkdir(join(dir, "bin"), { recursive: true });
    await mkdir(join(dir, "lib", "deep"), { recursive: true });
    await mkdir(join(dir, "node_modules", "fake-pkg", "lib"), { recursive: true });
    await writeFile(join(dir, "lib", "deep", "asset.txt"), "beside the reader");
    await writeFile(
      join(dir, "lib", "deep", "reader.js"),
      'import { readFileSync } from "node:fs";\n' +
        'export const asset = () => readFileSync(new URL("./asset.txt", import.meta.url), "utf8");\n' +
        "export const self = import.meta.url;\n",
    );
    await writeFile(join(dir, "node_modules", "fake-pkg", "lib", "data.txt"), "package data");
    // Required by a path made at run time, as node-gyp-build requires a native addon's binary.
    await writeFile(
      join(dir, "node_modules", "fake-pkg", "lib", "binding.cjs"),
      "module.exports = { native: true };\n",
    );
    await writeFile(
      join(dir, "node_modules", "fake-pkg", "lib", "index.js"),
      'const { readFileSync } = require("node:fs");\n' +
        'const { join } = require("node:path");\n' +
        'const binding = require(join(__dirname, ["binding", "cjs"].join(".")));\n' +
        "module.exports = {\n" +
        '  data: () => readFileSync(join(__dirname, "data.txt"), "utf8"),\n' +
        "  file: __filename,\n" +
        "  native: binding.native,\n" +
        "};\n",
    );
    await writeFile(
      join(dir, "node_modules", "fake-pkg", "package.json"),
      JSON.stringify({ name: "fake-pkg", main: "lib/index.js" }),
    );
    const entry = join(dir, "bin", "entry.js");
    await writeFile(
      entry,
      'import { asset, self } from "../lib/deep/reader.js";\n' +
        'import pkg from "fake-pkg";\n' +
        "export const got = {\n" +
        "  asset: asset(), self, data: pkg.data(), file: pkg.file, native: pkg.native,\n" +
        "  url: import.meta.url,\n" +
        "};\n",
    );
    await (bundleEntries as Bundle)(esbuild, dir, ["bin/entry.js"]);
    const text = await readFile(entry, "utf8");
    // Nothing of the app or the package left to load.
    expect(text).not.toMatch(/from "\.\.?\//);
    expect(text).not.toMatch(/from "fake-pkg"/);
    expect(text).toMatch(/\/\/# sourceMappingURL=entry\.js\.map\n$/);
    // Written in place: no temporary bundle left beside it.
    const { got } = (await import(pathToFileURL(entry).href)) as {
      got: {
        asset: string;
        self: string;
        data: string;
        file: string;
        native: boolean;
        url: string;
      };
    };
    expect(got.asset).toBe("beside the reader");
    expect(got.self).toBe(pathToFileURL(join(dir, "lib", "deep", "reader.js")).href);
    expect(got.data).toBe("package data");
    expect(got.native).toBe(true);
    expect(got.file).toBe(join(dir, "node_modules", "fake-pkg", "lib", "index.js"));
    expect(got.url).toBe(pathToFileURL(entry).href);
    const map = JSON.parse(await readFile(`${entry}.map`, "utf8")) as { sources: string[] };
    expect(map.sources.some((s) => s.endsWith("reader.js"))).toBe(true);
  });
});
