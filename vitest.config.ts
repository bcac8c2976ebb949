import { readFileSync, readdirSync } from "node:fs";
import { relative } from "node:path";
import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Seconds each slow test file took in a CI run (`node .ci/durations.mjs` writes them from the
 * run's JSON report). A fresh clone has no vitest cache, so vitest would order the files by size;
 * with two workers, a long file started late stretches the run beyond half the sum of the files.
 */
const durations: Record<string, number> = (() => {
  try {
    return JSON.parse(readFileSync(new URL("./.ci/test-durations.json", import.meta.url), "utf8"));
  } catch {
    return {};
  }
})();
/** A file without a recorded duration (new, or under 2 s). */
const UNKNOWN_S = 3;

/** Longest first (LPT list scheduling): the last files to start are the short ones. */
class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const secs = (f: TestSpecification) =>
      durations[relative(`${this.ctx.config.root}/test`, f.moduleId)] ?? UNKNOWN_S;
    return sorted
      .map((f, at) => ({ f, at, s: secs(f) }))
      .sort((a, b) => b.s - a.s || a.at - b.at)
      .map((x) => x.f);
  }
}

/**
 * Test files of pure logic: nothing in them starts a server, a process, a browser or a worker
 * thread, reads the environment or mocks. They share their worker's process and module cache
 * (isolate off): a fresh process and import for each of ~150 such files was ~1.6 s of a worker
 * each, half the run's tail. Every other file gets a process of its own, as before: run without
 * isolation, the integration suites slowed each other (what one left running) and took longer.
 */
const SIDE_EFFECTS =
  /setupNats|startApp|startTestApp|spawnReco|spawn|exec|chromium|Embedded|listen\(|serveGrpc|serveWeb|process\.env|worker_threads|Worker|connect\(|vi\.|helpers\/(app|nats)/;
const testDir = new URL("./test/", import.meta.url);
/** A test file's text with that of the test helpers it imports, and theirs. */
function withHelpers(file: URL, seen = new Set<string>()): string {
  if (seen.has(file.href)) return "";
  seen.add(file.href);
  const text = readFileSync(file, "utf8");
  const helpers = [...text.matchAll(/from "(\.\.?\/(?:helpers\/)?[\w.-]+)\.js"/g)]
    .map((m) => new URL(`${m[1]}.ts`, file))
    .filter((u) => u.href.startsWith(new URL("helpers/", testDir).href));
  return [text, ...helpers.map((u) => withHelpers(u, seen))].join("\n");
}
const pure = readdirSync(testDir)
  .filter((f) => f.endsWith(".test.ts"))
  .filter((f) => !SIDE_EFFECTS.test(withHelpers(new URL(f, testDir))))
  .map((f) => `test/${f}`);

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each spawn their own nats-server; two cores cannot run many at once.
    fileParallelism: true,
    maxWorkers: 2,
    sequence: { sequencer: LongestFirst },
    projects: [
      { extends: true, test: { name: "pure", include: pure, isolate: false } },
      {
        extends: true,
        test: { name: "integration", include: ["test/**/*.test.ts"], exclude: pure },
      },
    ],
  },
});
