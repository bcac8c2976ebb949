import { afterEach, describe, expect, it, vi } from "vitest";
import { status } from "@grpc/grpc-js";
import { Histogram, Registry } from "prom-client";
import { createGrpcMetrics } from "../connectors/grpc/metrics.js";

/**
 * The clock is frozen in the first test: a start time `seconds` ago makes record() observe exactly
 * that duration, however long the machine pauses between the two calls (a 2 ms GC pause under load
 * once moved a 3 ms call into the next bucket).
 */
const ago = (seconds: number) => performance.now() - seconds * 1000;

afterEach(() => {
  vi.restoreAllMocks();
});

async function valueOf(registry: Registry, name: string, labels: Record<string, string>) {
  const metric = registry.getSingleMetric(name);
  const { values } = await metric!.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))
    .reduce((sum, v) => sum + v.value, 0);
}

describe("gRPC metrics recorded in batches", () => {
  it("shows every finished call at any read, counts and buckets as prom-client's own would", async () => {
    const frozen = performance.now();
    vi.spyOn(performance, "now").mockReturnValue(frozen);
    const registry = new Registry();
    const metrics = createGrpcMetrics(registry);
    // The same observations through a plain prom-client histogram, for comparison.
    const reference = new Histogram({
      name: "reference_seconds",
      help: "h",
      labelNames: ["method"] as const,
      registers: [],
    });
    const durations = [0.003, 0.07, 3, 0.0002];
    // More than one batch (1024), and a partial one left pending.
    for (let i = 0; i < 2500; i++) {
      const d = durations[i % durations.length]!;
      metrics.record("GetRecommendations", i % 10 === 0 ? status.UNAVAILABLE : status.OK, ago(d));
      reference.observe({ method: "GetRecommendations" }, d);
    }
    metrics.record("StreamTrending", status.CANCELLED, ago(12));
    reference.observe({ method: "StreamTrending" }, 12);

    const labels = { method: "GetRecommendations" };
    expect(await valueOf(registry, "grpc_requests_total", { ...labels, code: "OK" })).toBe(2250);
    expect(await valueOf(registry, "grpc_requests_total", { ...labels, code: "UNAVAILABLE" })).toBe(
      250,
    );
    const text = await registry.metrics();
    expect(text).toMatch(/grpc_requests_total\{method="StreamTrending",code="CANCELLED"\} 1\n/);
    // Bucket and count lines are those of the reference, name aside (sums differ by µs).
    const lines = (t: string, name: string) =>
      t
        .split("\n")
        .filter((l) => l.startsWith(`${name}_bucket`) || l.startsWith(`${name}_count`))
        .map((l) => l.slice(name.length));
    const ours = lines(text, "grpc_request_duration_seconds");
    const refRegistry = new Registry();
    refRegistry.registerMetric(reference);
    expect(ours).toEqual(lines(await refRegistry.metrics(), "reference_seconds"));
    expect(ours).toContain('_count{method="GetRecommendations"} 2500');

    // Later calls show at the next read as well.
    metrics.record("GetRecommendations", status.OK, ago(0.003));
    expect(await valueOf(registry, "grpc_requests_total", { ...labels, code: "OK" })).toBe(2251);
  });

  it("is shared by servers that share a registry", () => {
    const registry = new Registry();
    expect(createGrpcMetrics(registry)).toBe(createGrpcMetrics(registry));
    expect(createGrpcMetrics(new Registry())).not.toBe(createGrpcMetrics(registry));
  });

  it("records a begun call once, whatever ends it", async () => {
    const registry = new Registry();
    const metrics = createGrpcMetrics(registry);
    const done = metrics.begin("StreamTrending");
    done(status.OK);
    done(status.CANCELLED);
    expect(await valueOf(registry, "grpc_requests_total", { method: "StreamTrending" })).toBe(1);
  });
});
