import { setFlagsFromString } from "node:v8";

/**
 * HEAP_GROWING_PERCENT: V8 lets its heap grow up to 4x what the last full GC kept before it
 * collects again (a factor it picks from GC and allocation speeds). The stages' state churns
 * (values replaced at every event, snapshot buffers, batches), so a 300k-user app held 622 MiB
 * of heap for ~120 MB live at bench step 7's measure: RSS that counted as state. A fixed
 * growth of `percent` collects sooner (more full GCs, each marking the live heap). V8 reads the
 * flag at each full GC, so it is set once the app has started (its state loaded at V8's own
 * growth) and holds from the next full GC on. 0: V8's own. Returns the percent set (0: none).
 */
export function limitHeapGrowth(percent: number): number {
  if (percent <= 0) return 0;
  setFlagsFromString(`--heap-growing-percent=${Math.round(percent)}`);
  return Math.round(percent);
}
