/**
 * Event-loop delay as the bench reports it. perf_hooks' monitorEventLoopDelay records the time
 * between its timer's ticks, so every sample includes the sampling interval itself: an idle
 * process sampled every 10 ms reads p50 ~10.1 ms, p99 ~14 ms (Node 20). The delay is that
 * interval less the resolution. prom-client's `nodejs_eventloop_lag_*` gauges come from the same
 * histogram with its default precision of 10 ms, so they carry the same 10 ms.
 */
import {
  constants,
  monitorEventLoopDelay,
  PerformanceObserver,
  type PerformanceEntry,
} from "node:perf_hooks";

/** prom-client's default `eventLoopMonitoringPrecision` (ms), included in its lag gauges. */
export const PROM_LOOP_RESOLUTION_MS = 10;

export interface LoopDelay {
  p99Ms: number;
  maxMs: number;
}

/** A sample (ms) taken every `resolutionMs`, less that interval: the time the loop was held. */
export const delayMs = (sampleMs: number, resolutionMs: number) =>
  Math.max(0, sampleMs - resolutionMs);

/**
 * Starts sampling this process's event loop: `read()` gives the delay p99 / max so far, `reset()`
 * starts again, `stop()` reads and stops sampling.
 */
export function watchLoopDelay(resolutionMs = 1): {
  read(): LoopDelay;
  reset(): void;
  stop(): LoopDelay;
} {
  const h = monitorEventLoopDelay({ resolution: resolutionMs });
  h.enable();
  const read = () => ({
    p99Ms: delayMs(h.percentile(99) / 1e6, resolutionMs),
    maxMs: delayMs(h.max / 1e6, resolutionMs),
  });
  return {
    read,
    reset: () => h.reset(),
    stop() {
      h.disable();
      return read();
    },
  };
}

export interface GcPauses {
  /** Collections in the window (every kind). */
  count: number;
  /** Their total and longest pause (ms). */
  totalMs: number;
  maxMs: number;
  /** Of them, young-generation scavenges (minor GC). */
  minor: number;
}

/**
 * Starts recording this process's garbage-collection pauses (perf_hooks 'gc' entries): each
 * pause stops the event loop, and every call in flight waits it out. `stop()` gives the counts.
 */
export function watchGc(): { stop(): GcPauses } {
  const r: GcPauses = { count: 0, totalMs: 0, maxMs: 0, minor: 0 };
  const add = (entries: PerformanceEntry[]) => {
    for (const e of entries) {
      r.count++;
      r.totalMs += e.duration;
      r.maxMs = Math.max(r.maxMs, e.duration);
      const kind = (e as { detail?: { kind?: number } }).detail?.kind;
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) r.minor++;
    }
  };
  const obs = new PerformanceObserver((list) => add(list.getEntries()));
  obs.observe({ entryTypes: ["gc"] });
  let stopped = false;
  return {
    stop() {
      if (stopped) return r;
      stopped = true;
      // Entries of the last collections are delivered later; take what is queued now.
      add(obs.takeRecords());
      obs.disconnect();
      return r;
    },
  };
}
