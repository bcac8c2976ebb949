// Writes .ci/test-durations.json (seconds per test file of 2 s or more, longest first) from the
// JSON report of a test run (.ci/test-results.json, which .ci/run writes): vitest.config.ts starts
// the longest files first.
import { readFileSync, writeFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2] ?? ".ci/test-results.json", "utf8"));
const out = {};
for (const [name, secs] of report.testResults
  .map((t) => [t.name.split("/test/").pop(), (t.endTime - t.startTime) / 1000])
  .sort((a, b) => b[1] - a[1]))
  if (secs >= 2) out[name] = Math.round(secs);
writeFileSync(".ci/test-durations.json", JSON.stringify(out, null, 2) + "\n");
console.log(`${Object.keys(out).length} files of 2 s or more`);
