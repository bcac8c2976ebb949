import { readFileSync } from "node:fs";
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

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration suites each spawn their own nats-server; two cores cannot run many at once.
    fileParallelism: true,
    maxWorkers: 2,
    sequence: { sequencer: LongestFirst },
  },
});
