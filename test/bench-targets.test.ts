import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { TARGETS } from "../bench/report.js";

/**
 * bench/RESULTS.md at 2e6f42d headed its targets "DESIGN §7" (the targets are §8) and held step 2
 * to ≥ 0.50× raw consume and recovery to 5 s, where DESIGN §8 says 50,000 events/s with at least
 * 0.2× and 3 s. The bench now takes every target from one table, checked here against the text.
 */
describe("the bench's targets", () => {
  const design = readFileSync(new URL("../docs/DESIGN.md", import.meta.url), "utf8");
  const section = design.slice(design.indexOf("## 8. Targets"));

  it("are DESIGN §8's", () => {
    expect(TARGETS.section).toBe("DESIGN §8");
    expect(section).toMatch(/^## 8\. Targets/);
    const n = (x: number) => x.toLocaleString("en-US");
    expect(section).toContain(`ingest of ${n(TARGETS.ingestEventsPerSec)} events/s`);
    expect(section).toContain(`under ${TARGETS.freshnessP99Ms} ms at p99`);
    expect(section).toContain(`at ${TARGETS.freshnessRate / 1000}k events/s`);
    expect(section).toContain(`at least ${TARGETS.servingShareOfEcho * 100}% of a`);
    expect(section).toContain(`within ${TARGETS.recoveryMs / 1000} s of a SIGKILL`);
  });

  it("hold ingest to 0.2× raw consume and memory to 1 KB per user at 1M users", () => {
    expect(TARGETS.ingestShareOfRawConsume).toBe(0.2);
    expect(TARGETS.bytesPerUserAt1M).toBe(1024);
  });
});
