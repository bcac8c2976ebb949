/**
 * The bad-event ratio alert (DESIGN.md §2: "if more than 5% of events in a minute are bad, the
 * processor raises an alert metric"). Pure: no I/O, the clock is injected, so it is tested
 * without sleeping.
 *
 * "A minute" is the sliding window of the last `windowMs` of processing time, kept as
 * `windowMs / bucketMs` buckets (60 one-second buckets by default): event time is no use here,
 * because a bad event may carry no readable time at all.
 *
 * The alert is raised when the window holds at least `minEvents` events and more than
 * `threshold` of them are bad. It is cleared only once a whole window has passed without the
 * ratio going over the threshold, so a ratio hovering around 5% raises it once, not on every
 * event: `onChange` (the warning log, the gauge) runs once per episode.
 */

export interface BadRatioOptions {
  /** Processing-time clock, epoch ms. */
  clock: () => number;
  /** Fraction of bad events above which the alert is raised. Default 0.05 (DESIGN: 5%). */
  threshold?: number;
  /** Length of the sliding window. Default 60,000 ms. */
  windowMs?: number;
  /** Resolution of the window. Default 1,000 ms; `windowMs` must be a multiple of it. */
  bucketMs?: number;
  /** Fewer events than this in the window never raise the alert. Default 1. */
  minEvents?: number;
  /** Called on every transition of the alert: raised (true) or cleared (false). */
  onChange?(alerting: boolean, stats: BadRatioStats): void;
}

export interface BadRatioStats {
  /** Events in the window. */
  total: number;
  /** Bad events in the window. */
  bad: number;
  /** bad / total, 0 when the window is empty. */
  ratio: number;
}

export interface BadRatioMonitor {
  /** Counts one input event, bad or not, at the clock's current time, and re-evaluates. */
  record(bad: boolean): void;
  /** Re-evaluates without a new event (a quiet minute clears the alert). Returns the state. */
  evaluate(): boolean;
  readonly alerting: boolean;
  /** The counts of the window ending now. */
  stats(): BadRatioStats;
}

export function createBadRatioMonitor(options: BadRatioOptions): BadRatioMonitor {
  const threshold = options.threshold ?? 0.05;
  const windowMs = options.windowMs ?? 60_000;
  const bucketMs = options.bucketMs ?? 1_000;
  const minEvents = options.minEvents ?? 1;
  if (!(bucketMs > 0) || !(windowMs >= bucketMs) || windowMs % bucketMs !== 0)
    throw new RangeError(
      `bad-ratio window ${windowMs} ms must be a positive multiple of its bucket ${bucketMs} ms`,
    );
  const size = windowMs / bucketMs;
  const totals = new Float64Array(size);
  const bads = new Float64Array(size);
  let total = 0;
  let bad = 0;
  /** Index (time / bucketMs) of the newest bucket; the window is (current - size, current]. */
  let current = Math.floor(options.clock() / bucketMs);
  let alerting = false;
  /** Bucket index at which the ratio was last over the threshold. */
  let lastOver = -Infinity;

  const advance = (): number => {
    // A clock that steps back counts into the newest bucket rather than into the past.
    const now = Math.max(current, Math.floor(options.clock() / bucketMs));
    const steps = Math.min(now - current, size);
    for (let k = 1; k <= steps; k++) {
      const slot = (current + k) % size;
      total -= totals[slot];
      bad -= bads[slot];
      totals[slot] = 0;
      bads[slot] = 0;
    }
    current = now;
    return now;
  };

  const snapshot = (): BadRatioStats => ({ total, bad, ratio: total > 0 ? bad / total : 0 });

  const evaluateAt = (now: number): boolean => {
    const over = total >= minEvents && total > 0 && bad / total > threshold;
    if (over) lastOver = now;
    if (over && !alerting) {
      alerting = true;
      options.onChange?.(true, snapshot());
    } else if (!over && alerting && now - lastOver >= size) {
      alerting = false;
      options.onChange?.(false, snapshot());
    }
    return alerting;
  };

  return {
    record(isBad) {
      const now = advance();
      const slot = now % size;
      totals[slot] += 1;
      total += 1;
      if (isBad) {
        bads[slot] += 1;
        bad += 1;
      }
      evaluateAt(now);
    },
    evaluate: () => evaluateAt(advance()),
    get alerting() {
      return alerting;
    },
    stats() {
      advance();
      return snapshot();
    },
  };
}
