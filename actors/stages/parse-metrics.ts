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
 * Parse's metrics that outlive restarts of the parse actor: the bad-event ratio alert, and the
 * event-time progress gauge, which parse sets through `progress` whenever its progress moves.
 */
export interface ParseMonitor extends BadRatioMonitor {
  /** Parse's event-time progress (max event time seen, epoch ms) is now `ms`. */
  progress(ms: number): void;
}

/**
 * The bad-event ratio alert of parse, wired to reco_bad_event_ratio and
 * reco_bad_event_ratio_alert and to a warning log, and parse's event-time progress, wired to
 * reco_event_time_progress_ms (the RecoEventTimeBehind alert and the dashboard read it). Pass it
 * as `ParseOptions.badRatio`. Create it once per pipeline, outside the parse handler's factory,
 * so the alert state survives a restart of the parse actor. Each scrape re-evaluates it, so a
 * quiet minute clears the alert even when no event arrives.
 */
/** The gauges the alert writes (connectors/http/metrics.ts has them). */
export interface ParseGauges {
  badRatioAlert: { set(value: number): void };
  /** Read at each scrape. */
  watchBadRatio(probe: () => { ratio: number; alerting: boolean }): void;
  progress: { set(ms: number): void };
}

export function createBadRatioAlert(
  metrics: ParseGauges | undefined,
  options: BadRatioAlertOptions = {},
): ParseMonitor {
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
  // The monitor itself (its `alerting` is a getter), with the progress gauge added.
  return Object.assign(monitor, {
    progress: (ms: number) => metrics?.progress.set(ms),
  });
}
