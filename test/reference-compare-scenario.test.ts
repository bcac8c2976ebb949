import { describe, expect, it } from "vitest";
import { DEFAULT_REF, reference, type Reference } from "./helpers/reference.js";
import { partitionOf } from "../actors/contract/index.js";
import { DAY, H, logA, refA, refB, scenario } from "./helpers/reference-scenario.js";

/*
 * The log that the pipeline is compared with the plain reference on, at 1, 3 and 8 partitions
 * (test/reference-compare-partitions.test.ts), checked on the reference alone, without a server:
 * it must reach every path the comparison is meant to cover (late events on each path,
 * duplicates, both answer sources, both horizons, the lateness boundaries, idle partitions), or
 * equal answers would prove little.
 */

describe("the reference scenario", () => {
  it("exercises every path: late events on each path, duplicates, both answer sources", () => {
    expect(refB.duplicates).toBeGreaterThan(50);
    expect(refB.lateCounts["behind_watermark:user"]).toBeGreaterThan(50);
    expect(refB.lateCounts["behind_watermark:1h"]).toBeGreaterThan(10);
    expect(refB.lateCounts["behind_watermark:24h"]).toBeGreaterThan(5);
    expect(refB.popularityLate).toBeGreaterThan(0);
    // Purchases beyond the 7-day horizon are kept in reco.late too, not only counted.
    expect(refB.lateCounts["behind_watermark:popularity"]).toBe(refB.popularityLate);
    const sources = new Set(
      refA.users().flatMap((u) => refA.recommend(u, 10).map((i) => i.source)),
    );
    expect(sources).toEqual(new Set(["PERSONALIZED", "POPULAR_FALLBACK"]));
    // The horizons cut into the log: interest and popularity change between the phases.
    expect(refA.popularity()).not.toEqual(refB.popularity());
    // The 7-day horizon cuts through the prologue at the end: part of it still counts.
    const prologue = new Set(scenario.log.slice(0, 60).map((e) => e.event_id));
    const counted = (ref: Reference) =>
      ref.timeline().filter((e) => prologue.has(e.id) && e.ts - (e.ts % H) + H > ref.now - 7 * DAY);
    expect(counted(refA).length).toBe(60);
    expect(counted(refB).length).toBeGreaterThan(5);
    expect(counted(refB).length).toBeLessThan(55);
    expect(refB.closedWindows("1h").length).toBeGreaterThan(40);
    expect(refB.closedWindows("24h").length).toBeGreaterThan(60);
    // The 24 h interest horizon changes top categories, and purchase exclusion changes answers.
    const noHorizon = reference(logA, { ...DEFAULT_REF, interestHorizonMs: 1e15 });
    const changed = refA
      .users()
      .filter(
        (u) => JSON.stringify(refA.topCategories(u)) !== JSON.stringify(noHorizon.topCategories(u)),
      );
    expect(changed.length).toBeGreaterThan(10);
    const rows = new Map(refA.popularity().map((p) => [p.item, p]));
    const excluding = refA.users().filter((u) => {
      const cats = new Set(refA.topCategories(u).map(([c]) => c));
      return refA
        .timeline()
        .some(
          (e) =>
            e.u === u &&
            e.t === "purchase" &&
            !(e.wb >= 0 && e.ts < e.wb - 10 * 60_000) &&
            e.ts - (e.ts % 300_000) + 300_000 > refA.now - DAY &&
            cats.has(rows.get(e.i)?.category ?? "-"),
        );
    });
    expect(excluding.length).toBeGreaterThan(5);
    // Events exactly on each lateness boundary (on time) and 1 ms behind it (late).
    const timeline = refB.timeline();
    for (const ooo of [10 * 60_000, 2 * H, 26 * H]) {
      expect(timeline.filter((e) => e.ts === e.wb - ooo).length).toBeGreaterThan(0);
      expect(timeline.filter((e) => e.ts === e.wb - ooo - 1).length).toBeGreaterThan(0);
    }
    // Users who only view still get personalised answers (views are interactions).
    const viewers = refA
      .users()
      .filter((u) => timeline.every((e) => e.u !== u || e.t === "view"))
      .filter((u) => refA.recommend(u, 10).some((i) => i.source === "PERSONALIZED"));
    expect(viewers.length).toBeGreaterThan(5);
    // The burst at the end of the log reaches at most 2 partitions of each path: the others
    // are idle while event time moves on.
    for (const keys of [scenario.burstUsers, scenario.burstItems])
      expect(new Set(keys.map((k) => partitionOf(k, 8))).size).toBeLessThanOrEqual(2);
  });
});
