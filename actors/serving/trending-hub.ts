import { ReplaySubject, type Observable } from "rxjs";
import type { TrendingSnapshot, TrendingWindowName } from "../contract/index.js";
import type { TrendingHeartbeat, TrendingKind, TrendingPart } from "../stages/index.js";
import { byItemId } from "../stages/index.js";

export interface TrendingHubOptions {
  partitions: number;
  /** Minimum interval between two non-final updates of a window (DESIGN: TRENDING_TRIGGER, 5 s). */
  triggerMs: number;
  oneHourOutOfOrdernessMs: number;
  oneDayOutOfOrdernessMs: number;
  /** TRENDING_WEIGHTS in force: each snapshot names them, so a reader knows what a score counts. */
  weights?: Readonly<Record<string, number>>;
  clock?: () => number;
}

export interface TrendingHub {
  /** Latest snapshot first (if any), then every update. */
  updates(kind: TrendingWindowName): Observable<TrendingSnapshot>;
  /** Applies a KV entry (exposed for tests of pure logic). */
  apply(key: string, value: TrendingPart | TrendingHeartbeat | undefined): void;
  /**
   * Emits what is due: a final for every window the merged watermark closed, at once; and for the
   * newest window, if a partition's list of it changed and says something new, a non-final
   * update, at most once per `triggerMs` per window kind.
   */
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
  // Windows whose parts changed since their last update, by start.
  const dirty = { "1h": new Set<number>(), "24h": new Set<number>() };
  const lastEmit: Record<TrendingKind, number> = { "1h": -Infinity, "24h": -Infinity };
  // What the last non-final update of each kind said ("<start> <items>"): a part put again with
  // the same content (a restarted partition, say) is no change.
  const lastSaid: Partial<Record<TrendingKind, string>> = {};
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
      items: all.slice(0, 100).map(([itemId, score, views, clicks, carts, purchases]) => ({
        itemId,
        score,
        views,
        clicks,
        // Parts written before carts and purchases were counted have neither.
        ...(carts !== undefined ? { carts, purchases: purchases ?? 0 } : {}),
      })),
      final,
      watermark: wm >= 0 && Number.isFinite(wm) ? wm - ooo : null,
      ...(opts.weights ? { weights: opts.weights } : {}),
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
      dirty[kind].add(Number(start));
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
            // Finals at once, whatever the trigger.
            finalised[kind].add(start);
            emit(merge(kind, start, true));
            parts[kind].delete(start);
            dirty[kind].delete(start);
          }
        }
        // The newest window, if it changed, at most once per trigger interval.
        const newest = [...parts[kind].keys()].sort((a, b) => b - a)[0];
        if (newest === undefined) dirty[kind].clear();
        else if (dirty[kind].has(newest) && now - lastEmit[kind] >= opts.triggerMs) {
          const snapshot = merge(kind, newest, false);
          const said = `${newest} ${JSON.stringify(snapshot.items)}`;
          if (said !== lastSaid[kind]) {
            emit(snapshot);
            lastEmit[kind] = now;
            lastSaid[kind] = said;
          }
          dirty[kind].clear();
        } else if (!dirty[kind].has(newest)) dirty[kind].clear(); // older windows get finals only
        // Bound memory: keep the finalised set small.
        if (finalised[kind].size > 1000)
          finalised[kind] = new Set([...finalised[kind]].slice(-500));
      }
    },
  };
}
