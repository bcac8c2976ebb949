import type { Metrics } from "../connectors/http/metrics.js";
import { createBadRatioMonitor, type BadRatioMonitor } from "./bad-ratio.js";

export interface BadRatioAlertOptions {
  /** Warning log: called once when the alert is raised and once when it clears. */
  log?: (obj: object, msg: string) => void;
  clock?: () => number;
  /** Default 0.05 (DESIGN.md §2). */
  threshold?: number;
  /** Default 60,000 ms. */
  windowMs?: number;
}

/**
 * The bad-event ratio alert of parse, wired to reco_bad_event_ratio and
 * reco_bad_event_ratio_alert and to a warning log. Pass it as `ParseOptions.badRatio`. Create it
 * once per pipeline, outside the parse handler's factory, so the alert state survives a restart
 * of the parse actor. Each scrape re-evaluates it, so a quiet minute clears the alert even when
 * no event arrives.
 */
export function createBadRatioAlert(
  metrics: Metrics | undefined,
  options: BadRatioAlertOptions = {},
): BadRatioMonitor {
  const { log } = options;
  const threshold = options.threshold ?? 0.05;
  const monitor = createBadRatioMonitor({
    clock: options.clock ?? Date.now,
    threshold,
    ...(options.windowMs !== undefined ? { windowMs: options.windowMs } : {}),
    onChange(alerting, s) {
      metrics?.badRatioAlert.set(alerting ? 1 : 0);
      const stats = { bad: s.bad, total: s.total, ratio: Number(s.ratio.toFixed(4)), threshold };
      if (alerting) log?.(stats, "bad events: more than the allowed share of the last minute");
      else log?.(stats, "bad events: back under the allowed share for a whole minute");
    },
  });
  metrics?.watchBadRatio(() => {
    const alerting = monitor.evaluate();
    return { ratio: monitor.stats().ratio, alerting };
  });
  return monitor;
}
