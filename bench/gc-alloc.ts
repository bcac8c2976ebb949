import { GCProfiler } from "node:v8";

/**
 * Bytes the process's main isolate allocated while it ran, and its GCs (node:v8 GCProfiler): each
 * GC records the heap's used size before and after it, so what was allocated between two GCs is
 * the next one's "before" less the previous one's "after" (and the end's used size less the last
 * "after"). Worker threads (ALS) are other isolates: not counted. Concurrent sweeping makes the
 * old space's used size lag a little, so read the figure to ~5%, and A/B in the same setting.
 */
export interface Space {
  spaceName: string;
  spaceUsedSize: number;
}
interface Sample {
  heapStatistics: { usedHeapSize: number };
  heapSpaceStatistics: Space[];
}
const OLD = new Set(["old_space", "large_object_space"]);
const oldUsed = (s: Sample) =>
  s.heapSpaceStatistics.reduce((n, x) => n + (OLD.has(x.spaceName) ? x.spaceUsedSize : 0), 0);

export interface GcAllocation {
  allocatedBytes: number;
  scavenges: number;
  /** Bytes scavenges moved to the old generation (old and large-object spaces' growth). */
  promotedBytes: number;
  /** Full (mark-compact) GCs. */
  markCompacts: number;
  /** Time of those GCs as V8 reports it (`cost`, wall time on the main thread), ms. */
  gcMs: number;
}

export function watchAllocation(): { stop(): GcAllocation } {
  const p = new GCProfiler();
  p.start();
  return {
    stop() {
      const data = p.stop() as {
        statistics: { gcType: string; cost: number; beforeGC: Sample; afterGC: Sample }[];
      };
      let allocatedBytes = 0;
      let scavenges = 0;
      let markCompacts = 0;
      let promotedBytes = 0;
      let gcMs = 0;
      let after: number | undefined;
      for (const s of data.statistics) {
        if (after !== undefined)
          allocatedBytes += Math.max(0, s.beforeGC.heapStatistics.usedHeapSize - after);
        after = s.afterGC.heapStatistics.usedHeapSize;
        if (s.gcType === "Scavenge") {
          scavenges++;
          promotedBytes += Math.max(0, oldUsed(s.afterGC) - oldUsed(s.beforeGC));
        } else if (s.gcType === "MarkSweepCompact") markCompacts++;
        gcMs += s.cost / 1000;
      }
      return { allocatedBytes, promotedBytes, scavenges, markCompacts, gcMs };
    },
  };
}
