import {
  constants,
  performance,
  PerformanceObserver,
  type PerformanceEntry,
} from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * HEAP_GROWING_PERCENT: V8 lets its heap grow up to 4x what the last full GC kept before it
 * collects again (a factor it picks from GC and allocation speeds). The stages' state churns
 * (values replaced at every event, snapshot buffers, batches), so a 300k-user app held 622 MiB
 * of heap for ~120 MB live at bench step 7's measure: RSS that counted as state. A fixed
 * growth of `percent` collects sooner (more full GCs, each marking the live heap). V8 reads the
 * flag at each full GC, so it is set once the app has started (its state loaded at V8's own
 * growth) and holds from the next full GC on.
 *
 * The default, 100, bounds the heap under load to twice what is live. Each full GC marks the
 * live heap, so the marking per promoted byte goes as 1 / percent: bench step 2 (100,000 events,
 * two alternating runs each, 2026-11-29) spent 215.3 and 205.5 µs of app CPU per event without
 * ALS at 25 (14-18 mark-compacts, V8's helper threads 87-90 µs), 160.5 and 166.5 at 100 (5, 55
 * µs) and 153.3 and 163.3 at V8's own (4, 48-49 µs). What a burst leaves above the live heap is
 * given back once the process is quiet (collectWhenQuiet), so at rest the percent matters
 * little: step 7 at 1M users held 859 and 873 B of RSS per user at rest at 100, 833 and 843 at
 * 25.
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

/** The main thread's event-loop utilisation below which a check counts as quiet. */
export const QUIET_UTILISATION = 0.2;

/**
 * HEAP_QUIET_GC_MS: one full GC, compacting, once the process has been quiet that long after
 * work. V8 collects only when allocation reaches its limit, and a quiet app allocates little
 * (timers, metrics), so what a burst of ingest left behind stays in the heap, counted in RSS:
 * bench step 7 read V8's heap at 461-470 MiB held for 247-268 MiB used after 1M users, and the
 * same 15 s later (V8's memory reducer did not run). With this GC, 260-265 MiB held 15 s after
 * the ingest and RSS 250 MiB less; without the compaction (`--compact-on-every-full-gc` for the
 * one GC) it kept 413 MiB held. Quiet: the main thread's event-loop utilisation under
 * QUIET_UTILISATION in every check (once a second) of the last `quietMs` (default 2 s: the
 * memory a catch-up took is given back seconds after it ends). Once per quiet spell (a busy
 * check must come between two), and only when the heap holds at least `minMiB` more than the
 * last full GC kept. The GC is the process's own: every task of the process waits for
 * it (558 ms at 1M users), once after a burst.
 *
 * `quietMs` 0: never. Returns how many it ran, and how to stop following the loop.
 */
export function collectWhenQuiet(
  quietMs: number,
  minMiB: number,
  opts: { checkMs?: number; collected?: (ms: number, freedBytes: number) => void } = {},
): { collections(): number; stop(): void } {
  if (quietMs <= 0) return { collections: () => 0, stop: () => undefined };
  const checkMs = opts.checkMs ?? 1000;
  const checks = Math.max(1, Math.ceil(quietMs / checkMs));
  const minBytes = minMiB * 1024 * 1024;
  // gc() of --expose-gc, made for this process's new contexts (the flag does nothing else).
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  let kept = getHeapStatistics().used_heap_size;
  const observer = new PerformanceObserver((list) => {
    const major = list.getEntries().some((e) => kindOf(e) === constants.NODE_PERFORMANCE_GC_MAJOR);
    if (major) kept = getHeapStatistics().used_heap_size;
  });
  observer.observe({ entryTypes: ["gc"] });
  /**
   * The heap held right after this function's last GC: compacted, it cannot hold much less (new
   * space and code stay committed). Another GC waits until the heap has grown past it by
   * `minMiB`: a short task after a quiet GC (a request, a timer's work, a moment without a CPU)
   * ended the quiet spell, and the next one ran a full GC of the whole heap that gave back
   * nothing.
   */
  let floor = 0;
  let last = performance.eventLoopUtilization();
  let quiet = 0;
  let busySince = false;
  let n = 0;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const u = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    if (u >= QUIET_UTILISATION) {
      quiet = 0;
      busySince = true;
      return;
    }
    if (++quiet < checks || !busySince) return;
    const before = getHeapStatistics();
    if (before.total_heap_size - Math.max(kept, floor) < minBytes) return;
    const began = performance.now();
    setFlagsFromString("--compact-on-every-full-gc");
    try {
      gc();
    } finally {
      setFlagsFromString("--no-compact-on-every-full-gc");
    }
    const after = getHeapStatistics();
    kept = after.used_heap_size;
    floor = after.total_heap_size;
    busySince = false;
    // The GC's own time is not work that ends a quiet spell.
    last = performance.eventLoopUtilization();
    n++;
    opts.collected?.(performance.now() - began, before.total_heap_size - after.total_heap_size);
  }, checkMs);
  timer.unref();
  return {
    collections: () => n,
    stop: () => {
      clearInterval(timer);
      observer.disconnect();
    },
  };
}

/**
 * The heap settings a process applies once started (HEAP_GROWING_PERCENT, HEAP_GROWING_MIN_MB,
 * HEAP_QUIET_GC_MS): the growth limit and the GC once quiet. `collected`: told of each such GC.
 */
export function applyHeapSettings(
  cfg: { heapGrowingPercent: number; heapGrowingMinMb: number; heapQuietGcMs: number },
  collected?: (ms: number, freedBytes: number) => void,
): { percent(): number; stop(): void } {
  const growth = limitHeapGrowth(cfg.heapGrowingPercent, cfg.heapGrowingMinMb);
  const quiet = collectWhenQuiet(
    cfg.heapQuietGcMs,
    cfg.heapGrowingMinMb,
    collected ? { collected } : {},
  );
  return {
    percent: growth.percent,
    stop: () => {
      growth.stop();
      quiet.stop();
    },
  };
}
