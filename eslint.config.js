// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { importX } from "eslint-plugin-import-x";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";

/**
 * A lint zone: files matching `files` may not import the top-level folders `folders` (by any
 * relative path) nor the packages `packages`.
 * @param {string} files
 * @param {string[]} folders
 * @param {string[]} packages
 */
function layer(files, folders, packages) {
  const where = files.split("/")[0];
  return {
    files: [files],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            ...folders.map((f) => ({
              group: [`../${f}/**`, `../../${f}/**`, `../../../${f}/**`],
              message: `${where}/ must not import ${f}/ (layers: README "Layout")`,
            })),
            ...packages.map((p) => ({
              group: [p],
              message: `${where}/ must not import ${p} (layers: README "Layout")`,
            })),
          ],
        },
      ],
    },
  };
}

export default tseslint.config(
  {
    ignores: [
      "proto/gen/**",
      "node_modules/**",
      "dist/**",
      "data/**",
      "coverage/**",
      ".scratch/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: "readonly", console: "readonly" } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "off",
    },
  },
  {
    // No import circles anywhere (STYLE "Comments and tooling"): a circle hides which module is
    // the lower one, and ESM evaluates one side half-initialised. The rule skips `import type`
    // (it has no option to count them): test/import-cycles.test.ts walks those too.
    files: ["**/*.ts", "**/*.mts", "**/*.mjs", "**/*.js"],
    plugins: { "import-x": importX },
    settings: {
      // Parse .ts modules too (by default the plugin reads only .js, and sees no circle in TS).
      "import-x/extensions": [".ts", ".mts", ".js", ".mjs"],
      "import-x/parsers": { "@typescript-eslint/parser": [".ts", ".mts"] },
      "import-x/resolver-next": [createTypeScriptImportResolver({ project: "tsconfig.json" })],
    },
    rules: { "import-x/no-cycle": "error" },
  },
  // Layers (README "Layout"): the generic runtime knows no recommendations and no transport; state
  // knows no stages and no transport; stages and their host import no transport (it is injected:
  // connectors/nats/host-transport.ts). bin/ (with bin/pipeline/) composes, and may import anything.
  layer("runtime/**/*.ts", ["actors", "connectors", "state", "bin"], ["nats", "@grpc/*", "level"]),
  layer("state/**/*.ts", ["actors", "connectors", "bin"], ["@grpc/*"]),
  layer("actors/**/*.ts", ["connectors", "bin"], ["nats", "@grpc/*"]),
  {
    // Settings and test faults come in as dependencies; only bin/ reads the environment.
    files: ["actors/**/*.ts", "state/**/*.ts", "runtime/**/*.ts"],
    rules: {
      "no-restricted-properties": [
        "error",
        {
          object: "process",
          property: "env",
          message: "read the environment in bin/ and inject it (bin/test-faults.ts, bin/config.ts)",
        },
      ],
    },
  },
  {
    // The web console: plain ES modules run by the browser.
    files: ["web/**/*.js"],
    languageOptions: {
      globals: Object.fromEntries(
        [
          "window",
          "document",
          "Node",
          "location",
          "fetch",
          "EventSource",
          "URL",
          "URLSearchParams",
          "setTimeout",
          "clearTimeout",
          "setInterval",
          "clearInterval",
          "requestAnimationFrame",
          "ResizeObserver",
          "Intl",
        ].map((g) => [g, "readonly"]),
      ),
    },
  },
);
