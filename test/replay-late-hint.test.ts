import { describe, expect, it } from "vitest";
import { formatSummary, type ReplaySummary } from "../bin/replay/run.js";

/*
 * A replay whose events the engine found mostly late (its event-time clock already past the log,
 * as after a REES46 replay of October 2019 followed by MovieLens into the same DATA_DIR) says why
 * and what to do.
 */

const summary = (late: Record<string, number>, sent = 1000): ReplaySummary => ({
  format: "movielens",
  rows: sent,
  sent,
  duplicates: 0,
  order: "sorted",
  outOfOrder: 0,
  rejected: 0,
  rejections: [],
  elapsedMs: 1000,
  aborted: false,
  engine: { caughtUp: true, waitedMs: 500, late, dead: {}, duplicates: 0 },
});

describe("the replay's late-data hint", () => {
  it("says the engine's clock was past the log and to use a fresh DATA_DIR when most were late", () => {
    const text = formatSummary(
      summary({ "behind_watermark:user": 1000, "behind_watermark:24h": 1000 }),
    );
    const lines = text.split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatch(
      /^most events were late \(1000 of 1000 on one path\): the engine's event-time clock was already past this log .* fresh DATA_DIR/,
    );
  });

  it("says nothing more when few were late", () => {
    expect(formatSummary(summary({ "behind_watermark:user": 10 })).split("\n")).toHaveLength(2);
    expect(formatSummary(summary({})).split("\n")).toHaveLength(2);
  });
});
