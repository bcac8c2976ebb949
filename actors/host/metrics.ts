import type { MemberLoad } from "./host-chain.js";
import type { HostMetrics } from "./types.js";

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
  const memberLongest = new Map<string, number>();
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
    /**
     * Hands the sums over (and the gauges: lag, mailbox depth). A chain's members (`members`)
     * get their own busy time and inputs, the first member the records the chain read; the
     * chain's own series keep its consumer's figures and, as busy time, what the host did
     * around the members (decoding, flushing outputs, snapshots), so that busy time summed over
     * stages is still the process's.
     */
    report(o: {
      sent: number;
      pending: number | undefined;
      mailbox: number;
      members?: readonly MemberLoad[] | undefined;
    }) {
      if (!metrics) return;
      if (inputs > 0) metrics.input(stage, partition, inputs, records);
      if (o.sent > 0) metrics.output(stage, partition, o.sent);
      let own = busyMs;
      for (const [k, m] of (o.members ?? []).entries()) {
        own -= m.busyMs;
        if (m.busyMs > 0) metrics.busy(m.stage, partition, m.busyMs / 1000);
        if (m.longestMs > (memberLongest.get(m.stage) ?? 0)) {
          memberLongest.set(m.stage, m.longestMs);
          metrics.longest(m.stage, partition, m.longestMs / 1000);
        }
        if (m.inputs > 0)
          metrics.input(m.stage, partition, m.inputs, k === 0 ? records : m.records);
      }
      if (own > 0) metrics.busy(stage, partition, own / 1000);
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
