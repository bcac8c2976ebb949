import { constants, PerformanceObserver, type PerformanceEntry } from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";

/**
 * HEAP_GROWING_PERCENT: V8 lets its heap grow up to 4x what the last full GC kept before it
 * collects again (a factor it picks from GC and allocation speeds). The stages' state churns
 * (values replaced at every event, snapshot buffers, batches), so a 300k-user app held 622 MiB
 * of heap for ~120 MB live at bench step 7's measure: RSS that counted as state. A fixed
 * growth of `percent` collects sooner (more full GCs, each marking the live heap). V8 reads the
 * flag at each full GC, so it is set once the app has started (its state loaded at V8's own
 * growth) and holds from the next full GC on.
 *
 * HEAP_GROWING_MIN_MB: a small heap may still grow by at least `minMiB` between full GCs. A
 * quarter of a small live heap is a few MiB of promoted records and snapshot buffers: the
 * design ranking's replay of 60,000 events in a 4-partition app (~165 MB of heap held) made
 * 22-29 full GCs at 25% and took a median 18.2 s of CPU over five runs; free to grow 64 MiB it
 * made 7-8 and took 14.1 s (128 MiB: 4-7, 13.1 s; V8's own: 4-5, 14.1 s; 32 MiB on another
 * day: 11-13, 1.1x the CPU of 64 MiB). So after each full GC the percent is set again from what
 * it kept: `percent`, or more where `percent` of the live heap is under `minMiB` (at most V8's
 * own 4x). The floor is 32 MiB: bench step 7 held 1,042 and 1,051 B of RSS per user at 1M users
 * with 64 MiB, over the 1 KB target, against 969 with 32 and 957-990 without a floor.
 *
 * `percent` 0: V8's own. Returns how to read the percent in force, and to stop following GCs.
 */
export function limitHeapGrowth(percent: number, minMiB = 0): { percent(): number; stop(): void } {
  if (percent <= 0) return { percent: () => 0, stop: () => undefined };
  const minBytes = minMiB * 1024 * 1024;
  let now = 0;
  const set = () => {
    const p = growingPercent(percent, minBytes, getHeapStatistics().used_heap_size);
    if (p === now) return;
    now = p;
    setFlagsFromString(`--heap-growing-percent=${p}`);
  };
  set();
  let observer: PerformanceObserver | undefined;
  if (minBytes > 0) {
    observer = new PerformanceObserver((list) => {
      const major = list
        .getEntries()
        .some((e) => kindOf(e) === constants.NODE_PERFORMANCE_GC_MAJOR);
      if (major) set();
    });
    observer.observe({ entryTypes: ["gc"] });
  }
  return { percent: () => now, stop: () => observer?.disconnect() };
}

/** A gc entry's kind (node's `detail.kind`). */
const kindOf = (e: PerformanceEntry) => (e as { detail?: { kind?: number } }).detail?.kind;

/** V8's own growth at most: 4x what the last full GC kept. */
export const MAX_GROWING_PERCENT = 300;

/**
 * The growth for a heap that keeps `liveBytes` after a full GC: `percent` of it, or `minBytes`
 * where that is more, as a whole percent (at most MAX_GROWING_PERCENT).
 */
export function growingPercent(percent: number, minBytes: number, liveBytes: number): number {
  const floor = liveBytes > 0 ? Math.ceil((100 * minBytes) / liveBytes) : MAX_GROWING_PERCENT;
  return Math.min(MAX_GROWING_PERCENT, Math.max(Math.round(percent), floor));
}
