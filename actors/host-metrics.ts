import type { HostMetrics } from "./host-types.js";

/**
 * A stage instance's metrics, summed here and handed to prom-client on a timer: a labelled
 * counter costs a label hash per call, which per input message was a measurable share of the
 * host's CPU.
 */
export function createMetricsTally(
  metrics: HostMetrics | undefined,
  stage: string,
  partition: number,
) {
  let inputs = 0;
  let records = 0;
  let busyMs = 0;
  let longestMs = 0;
  let longestReported = 0;
  return {
    /** `ms` of the event loop spent handling one of the instance's messages. */
    busy(ms: number) {
      busyMs += ms;
      if (ms > longestMs) longestMs = ms;
    },
    /** One input message holding `n` records. */
    input(n: number) {
      inputs++;
      records += n;
    },
    /** Hands the sums over (and the gauges: lag, mailbox depth). */
    report(o: { sent: number; pending: number | undefined; mailbox: number }) {
      if (!metrics) return;
      if (inputs > 0) metrics.input(stage, partition, inputs, records);
      if (o.sent > 0) metrics.output(stage, partition, o.sent);
      if (busyMs > 0) metrics.busy(stage, partition, busyMs / 1000);
      if (longestMs > longestReported)
        metrics.longest(stage, partition, (longestReported = longestMs) / 1000);
      inputs = 0;
      records = 0;
      busyMs = 0;
      if (o.pending !== undefined) metrics.lag(stage, partition, o.pending);
      metrics.mailbox(stage, partition, o.mailbox);
    },
  };
}
