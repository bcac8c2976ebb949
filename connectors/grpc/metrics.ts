import type { ServerInterceptingCall, ServerInterceptor, status } from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { statusName, transportStatus } from "./errors.js";

/** What the gRPC server records (DESIGN §6: gRPC request counts and latency histograms). */
export interface GrpcMetrics {
  /** Records a finished call: its final status and its duration since `startedMs` (performance.now()). */
  record(method: string, code: status, startedMs: number): void;
  /** Starts timing a call; the returned function records its outcome once. */
  begin(method: string): (code: status) => void;
  subscribers(delta: 1 | -1): void;
  dropped(count: number): void;
}

/** Observations held before they are handed to prom-client in one go. */
const BATCH = 1024;

interface MethodSeries {
  /** Label objects built once: prom-client hashes what it is given, it need not be new. */
  readonly method: { method: string };
  readonly codes: { method: string; code: string }[];
  /** Calls per status code not yet added to grpc_requests_total. */
  readonly pendingCodes: number[];
  /** Durations (s) not yet observed by grpc_request_duration_seconds. */
  readonly pending: Float64Array;
  size: number;
}

const NO_METRICS: GrpcMetrics = {
  record: () => {},
  begin: () => () => {},
  subscribers: () => {},
  dropped: () => {},
};

/** One recorder per registry: servers sharing a registry share its metrics and their batches. */
const byRegistry = new WeakMap<Registry, GrpcMetrics>();

/**
 * Registers `grpc_requests_total{method,code}`, `grpc_request_duration_seconds{method}` (for
 * streams: the stream's lifetime), `grpc_trending_subscribers` and
 * `grpc_trending_dropped_updates_total` in `registry` (or reuses them).
 *
 * A unary call records into plain arrays and the batch goes to prom-client every BATCH calls and
 * before every read of either metric (their `collect` hooks), so a scrape always sees every call
 * that has finished. prom-client's own observe() and inc() validate and hash their labels per
 * call: ~2 µs of a GetRecommendations call that costs grpc-js itself ~60 µs, the largest of our
 * per-call costs after the answer itself (profile of the serving path under h2load).
 */
export function createGrpcMetrics(registry: Registry | undefined): GrpcMetrics {
  if (!registry) return NO_METRICS;
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const series = new Map<string, MethodSeries>();
  const flush = (): void => {
    for (const s of series.values()) {
      for (let code = 0; code < s.pendingCodes.length; code++) {
        const count = s.pendingCodes[code] ?? 0;
        if (count === 0) continue;
        s.pendingCodes[code] = 0;
        requests.inc(
          (s.codes[code] ??= { method: s.method.method, code: statusName(code) }),
          count,
        );
      }
      for (let i = 0; i < s.size; i++) duration.observe(s.method, s.pending[i]!);
      s.size = 0;
    }
  };
  const requests = new Counter({
    name: "grpc_requests_total",
    help: "gRPC calls served, by method and final status code",
    labelNames: ["method", "code"] as const,
    registers,
    collect: flush,
  });
  const duration = new Histogram({
    name: "grpc_request_duration_seconds",
    help: "gRPC call duration in seconds (for server streams: the stream's lifetime)",
    labelNames: ["method"] as const,
    registers,
    collect: flush,
  });
  const subscribers = new Gauge({
    name: "grpc_trending_subscribers",
    help: "Open StreamTrending calls",
    registers,
  });
  const dropped = new Counter({
    name: "grpc_trending_dropped_updates_total",
    help: "Trending updates skipped for slow subscribers (superseded by a newer one)",
    registers,
  });
  const seriesOf = (method: string): MethodSeries => {
    let s = series.get(method);
    if (s === undefined) {
      s = {
        method: { method },
        codes: [],
        pendingCodes: [],
        pending: new Float64Array(BATCH),
        size: 0,
      };
      series.set(method, s);
    }
    return s;
  };
  const record = (method: string, code: status, startedMs: number): void => {
    const s = seriesOf(method);
    s.pendingCodes[code] = (s.pendingCodes[code] ?? 0) + 1;
    s.pending[s.size++] = (performance.now() - startedMs) / 1000;
    if (s.size === BATCH) flush();
  };
  const metrics: GrpcMetrics = {
    record,
    begin(method) {
      const startedMs = performance.now();
      let done = false;
      return (code) => {
        if (done) return;
        done = true;
        record(method, code, startedMs);
      };
    },
    subscribers: (delta) => subscribers.inc(delta),
    dropped: (count) => dropped.inc(count),
  };
  byRegistry.set(registry, metrics);
  return metrics;
}

/**
 * A server interceptor that gives grpc-js's own error statuses (a malformed HTTP/2 request to a
 * method we serve: no message, two messages, a bad `grpc-timeout`, a body that does not
 * decompress, too large) their right code (errors.ts `transportStatus`) and counts them in
 * grpc_requests_total under the method's name: our handlers, which count every other call, never
 * ran for them. A call to an unknown method gets no interceptor from grpc-js (UNIMPLEMENTED, as it
 * should be, but not counted).
 *
 * grpc-js raises some of these from inside its base call (`this.sendStatus`), below any
 * interceptor's wrapper, so the interceptor wraps the base call's own `sendStatus` instead of
 * returning a wrapper: that sees them all, and costs one closure per call, not a wrapper call.
 */
export function transportErrorInterceptor(metrics: GrpcMetrics): ServerInterceptor {
  return (method, call) => {
    const startedMs = performance.now();
    const base = call as {
      sendStatus(s: Parameters<ServerInterceptingCall["sendStatus"]>[0]): void;
    };
    const send = base.sendStatus.bind(base);
    let sent = false;
    base.sendStatus = (s) => {
      // grpc-js sends only a call's first status; a later one (the call's own handling, after a
      // bad grpc-timeout was answered) goes nowhere and is not counted either.
      if (sent) return;
      sent = true;
      const fixed =
        s.code === 0 ? undefined : transportStatus({ code: s.code, details: s.details ?? "" });
      if (fixed === undefined) {
        send(s);
        return;
      }
      metrics.record(method.path.slice(method.path.lastIndexOf("/") + 1), fixed.code, startedMs);
      send({ ...s, ...fixed });
    };
    // The base call itself: the interface is what grpc-js uses of the result.
    return call as ServerInterceptingCall;
  };
}
