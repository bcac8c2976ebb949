import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  formatMeasure,
  measureDesignStages,
  measureMerged,
  REES46_HEAD,
  rees46Records,
  syntheticRecords,
  type SnapshotMeasure,
} from "./helpers/snapshot-bytes.js";

/**
 * What the design-path stages' snapshots write on the REES46 head (17,434 events, a snapshot
 * every 1,000) and on a seeded 9-day log: bytes proportional to what changed. The bounds are the measured figures with
 * some room; the layouts before were far above them (window cells ~103 B per event, trending
 * cells ~45, a merged stage's waiting lists growing with the lag of the partition behind).
 */

function requireData() {
  if (!existsSync(REES46_HEAD))
    throw new Error(
      `${REES46_HEAD} is missing: this test reads the shared logs from ../shared/data ` +
        "(see ../shared/data/README.md; they are never committed to this repo)",
    );
}

const perEvent = (m: SnapshotMeasure, id: string) => {
  const w = m.maps.find((x) => `${x.stage}/${x.map}` === id);
  if (!w) throw new Error(`${id} wrote nothing:\n${formatMeasure(m)}`);
  return w.bytes / m.events;
};

describe("snapshot bytes of the design-path stages", () => {
  it("window cells: under 85 bytes per event (objects and JSON keys: ~103)", () => {
    requireData();
    const m = measureDesignStages(rees46Records());
    expect(perEvent(m, "window/cell"), formatMeasure(m)).toBeLessThan(85);
  }, 60_000);

  it("trending cells: under 38 bytes per event (keys of the hour's start in ms: ~45)", () => {
    requireData();
    const m = measureDesignStages(rees46Records());
    expect(perEvent(m, "trending/cell"), formatMeasure(m)).toBeLessThan(38);
  }, 60_000);

  it("popularity: buckets under 10 bytes per event on a 9-day log (whole items: ~76), rows under 12 (objects: ~20)", () => {
    const m = measureDesignStages(syntheticRecords(30_000));
    expect(perEvent(m, "popularity/bucket"), formatMeasure(m)).toBeLessThan(10);
    expect(perEvent(m, "popularity/row"), formatMeasure(m)).toBeLessThan(12);
  }, 60_000);

  it("a merged stage's waiting records: bytes per snapshot do not grow with the lag", async () => {
    requireData();
    const recs = rees46Records();
    const near = await measureMerged(recs, 4, 60);
    const far = await measureMerged(recs, 4, 400);
    // Whole lists rewritten at each snapshot: ~58 and ~472 B per event.
    const [a, b] = [perEvent(near, "merged/waiting-hops"), perEvent(far, "merged/waiting-hops")];
    expect(b, `${formatMeasure(near)}\n${formatMeasure(far)}`).toBeLessThan(2 * a);
    // Each hop's records as JSON text (~108 B per event): a fraction of whole lists at that lag.
    expect(b).toBeLessThan(150);
  }, 60_000);
});
