import { ReplaySubject, type Observable } from "rxjs";
import type { KvEntry, NatsConnection, QueuedIterator } from "nats";
import { BUCKETS } from "../connectors/nats/topology.js";
import { createActor, type Actor } from "../runtime/index.js";
import type { TrendingSnapshot, TrendingWindowName } from "../connectors/grpc/backend.js";
import type { TrendingHeartbeat, TrendingKind, TrendingPart } from "./trending.js";
import { byItemId } from "./popularity-join.js";

export interface TrendingHubOptions {
  partitions: number;
  /** Minimum interval between two non-final updates of a window (DESIGN: TRENDING_TRIGGER, 5 s). */
  triggerMs: number;
  oneHourOutOfOrdernessMs: number;
  oneDayOutOfOrdernessMs: number;
  clock?: () => number;
}

export interface TrendingHub {
  /** Latest snapshot first (if any), then every update. */
  updates(kind: TrendingWindowName): Observable<TrendingSnapshot>;
  /** Applies a KV entry (exposed for tests of pure logic). */
  apply(key: string, value: TrendingPart | TrendingHeartbeat | undefined): void;
  /** Emits what is due: finals at once, the newest window if changed and the trigger allows. */
  evaluate(): void;
  latest(kind: TrendingWindowName): TrendingSnapshot | undefined;
}

/**
 * Merges the partitions' trending lists into one top list per window. The watermark of the
 * merged stream is the minimum over the partitions' heartbeats, so a window is final only when
 * every partition has passed it.
 */
export function createTrendingHub(opts: TrendingHubOptions): TrendingHub {
  const clock = opts.clock ?? Date.now;
  const parts = {
    "1h": new Map<number, Map<number, TrendingPart>>(),
    "24h": new Map<number, Map<number, TrendingPart>>(),
  };
  const hb = new Map<number, number>();
  const subjects = {
    "1h": new ReplaySubject<TrendingSnapshot>(1),
    "24h": new ReplaySubject<TrendingSnapshot>(1),
  };
  const latest: Partial<Record<TrendingKind, TrendingSnapshot>> = {};
  const dirty = new Set<TrendingKind>();
  const lastEmit: Record<TrendingKind, number> = { "1h": 0, "24h": 0 };
  const finalised = { "1h": new Set<number>(), "24h": new Set<number>() };

  const minWm = () => {
    if (hb.size < opts.partitions) return -1;
    let m = Infinity;
    for (const v of hb.values()) m = Math.min(m, v);
    return m;
  };
  const merge = (kind: TrendingKind, start: number, final: boolean): TrendingSnapshot => {
    const byQ = parts[kind].get(start);
    const all: TrendingPart["items"] = [];
    let end = start + (kind === "1h" ? 3_600_000 : 86_400_000);
    for (const p of byQ?.values() ?? []) {
      all.push(...p.items);
      end = p.end;
    }
    all.sort((a, b) => b[1] - a[1] || byItemId(a[0], b[0]));
    // The merged watermark: the minimum progress over partitions less the window's disorder.
    const ooo = kind === "1h" ? opts.oneHourOutOfOrdernessMs : opts.oneDayOutOfOrdernessMs;
    const wm = minWm();
    return {
      window: kind,
      windowStart: start,
      windowEnd: end,
      items: all
        .slice(0, 100)
        .map(([itemId, score, views, clicks]) => ({ itemId, score, views, clicks })),
      final,
      watermark: wm >= 0 && Number.isFinite(wm) ? wm - ooo : null,
    };
  };
  const emit = (s: TrendingSnapshot) => {
    latest[s.window] = s;
    subjects[s.window].next(s);
  };

  return {
    updates: (kind) => subjects[kind].asObservable(),
    latest: (kind) => latest[kind],
    apply(key, value) {
      if (key.startsWith("wm.")) {
        if (value) hb.set(Number(key.slice(3)), (value as TrendingHeartbeat).wm);
        return;
      }
      const [kind, start, q] = key.split(".") as [TrendingKind, string, string];
      if (!value || !(kind in parts)) return;
      let byQ = parts[kind].get(Number(start));
      if (!byQ) parts[kind].set(Number(start), (byQ = new Map()));
      byQ.set(Number(q), value as TrendingPart);
      dirty.add(kind);
    },
    evaluate() {
      const wm = minWm();
      const now = clock();
      for (const kind of ["1h", "24h"] as const) {
        const ooo = kind === "1h" ? opts.oneHourOutOfOrdernessMs : opts.oneDayOutOfOrdernessMs;
        const starts = [...parts[kind].keys()].sort((a, b) => a - b);
        for (const start of starts) {
          const end = start + (kind === "1h" ? 3_600_000 : 86_400_000);
          if (wm >= 0 && wm - ooo >= end && !finalised[kind].has(start)) {
            finalised[kind].add(start);
            emit(merge(kind, start, true));
            parts[kind].delete(start);
          }
        }
        const newest = [...parts[kind].keys()].sort((a, b) => b - a)[0];
        if (newest !== undefined && dirty.has(kind) && now - lastEmit[kind] >= opts.triggerMs) {
          emit(merge(kind, newest, false));
          lastEmit[kind] = now;
          dirty.delete(kind);
        }
        // Bound memory: keep the finalised set small.
        if (finalised[kind].size > 1000)
          finalised[kind] = new Set([...finalised[kind]].slice(-500));
      }
    },
  };
}

/** The actor that feeds a hub from the reco_trending bucket and evaluates it on a timer. */
export function createTrendingHubActor(
  nc: NatsConnection,
  hub: TrendingHub,
  evaluateEveryMs: number,
): Actor<KvEntry | "tick"> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let timer: NodeJS.Timeout | undefined;
  return createActor<KvEntry | "tick">({
    id: "trending-hub",
    behavior: {
      async start(ctx) {
        const kv = await nc.jetstream().views.kv(BUCKETS.trending);
        iter = await kv.watch();
        void (async () => {
          try {
            for await (const e of iter!) ctx.send(e);
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        timer = setInterval(() => ctx.send("tick"), evaluateEveryMs);
      },
      receive(m) {
        if (m === "tick") return hub.evaluate();
        hub.apply(m.key, m.operation === "PUT" ? m.json() : undefined);
      },
      stop() {
        clearInterval(timer);
        iter?.stop();
      },
    },
  });
}
