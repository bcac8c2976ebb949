/**
 * Event-loop delay as the bench reports it. perf_hooks' monitorEventLoopDelay records the time
 * between its timer's ticks, so every sample includes the sampling interval itself: an idle
 * process sampled every 10 ms reads p50 ~10.1 ms, p99 ~14 ms (Node 20). The delay is that
 * interval less the resolution. prom-client's `nodejs_eventloop_lag_*` gauges come from the same
 * histogram with its default precision of 10 ms, so they carry the same 10 ms.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

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
