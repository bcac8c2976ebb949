import { AggregatorRegistry, Registry } from "prom-client";
import type { JsonMetrics } from "./parse-process-messages.js";

/**
 * The main process's registry with the child's metrics merged in (prom-client's cluster
 * aggregation: counters and most gauges are summed by label set, so parse's series, which only
 * the child has, appear as they are, and process-wide ones such as CPU seconds add up).
 */
export class MergedRegistry extends Registry {
  constructor(
    private readonly own: Registry,
    private readonly child: () => Promise<JsonMetrics>,
  ) {
    super();
  }

  override async metrics(): Promise<string> {
    return (await this.merged()).metrics();
  }

  /** As JSON: what a split `reco start`'s ingest process sends its parent (merged again there). */
  override async getMetricsAsJSON(): Promise<JsonMetrics> {
    return (await (await this.merged()).getMetricsAsJSON()) as JsonMetrics;
  }

  private async merged(): Promise<Registry> {
    const [mine, theirs] = await Promise.all([this.own.getMetricsAsJSON(), this.child()]);
    if (theirs.length === 0) return this.own;
    // "omit" (process_start_time_seconds) would drop the series: keep the main process's.
    const keep = (ms: JsonMetrics) =>
      ms.map((m) => (m.aggregator === "omit" ? { ...m, aggregator: "first" as const } : m));
    return AggregatorRegistry.aggregate([keep(mine), keep(theirs)]);
  }
}
