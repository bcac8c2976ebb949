import { defer, Subject, startWith, type Observable } from "rxjs";
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
  /**
   * The newest window's latest snapshot first (if any), then every update, finals of older
   * windows included.
   */
  updates(kind: TrendingWindowName): Observable<TrendingSnapshot>;
  /** Applies a KV entry (exposed for tests of pure logic). */
  apply(key: string, value: TrendingPart | TrendingHeartbeat | undefined): void;
  /**
   * Emits what is due: a final for every window the merged watermark closed, at once; and for the
   * newest window, if a partition's list of it changed and says something new, a non-final
   * update, at most once per `triggerMs` per window kind.
   */
  evaluate(): void;
  /** The newest window's latest snapshot: a final of an older window sent after it is not. */
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
    "1h": new Subject<TrendingSnapshot>(),
    "24h": new Subject<TrendingSnapshot>(),
  };
  const latest: Partial<Record<TrendingKind, TrendingSnapshot>> = {};
  // Windows whose parts changed since their last update, by start.
  const dirty = { "1h": new Set<number>(), "24h": new Set<number>() };
  const lastEmit: Record<TrendingKind, number> = { "1h": -Infinity, "24h": -Infinity };
  // What the last non-final update of each kind said ("<start> <items>"): a part put again with
  // the same content (a restarted partition, say) is no change.
  const lastSaid: Partial<Record<TrendingKind, string>> = {};
  const finalised = { "1h": new Set<number>(), "24h": new Set<number>() };
  /**
   * Per partition, its newest final 24 h part merged so far. A partition publishes a 24 h final
   * only when the window differs from the one an hour before (trending.ts): a window it did not
   * publish holds what this one holds. Every hour of a part's window leaves within 24 h, so a
   * newer final always follows before then.
   */
  const carried = new Map<number, TrendingPart>();

  const minWm = () => {
    if (hb.size < opts.partitions) return -1;
    let m = Infinity;
    for (const v of hb.values()) m = Math.min(m, v);
    return m;
  };
  /** The partitions' parts of a window: for a 24 h final, carried ones where none is final. */
  const partsOf = (kind: TrendingKind, start: number, final: boolean): TrendingPart[] => {
    const byQ = parts[kind].get(start);
    if (!final || kind !== "24h") return [...(byQ?.values() ?? [])];
    const out: TrendingPart[] = [];
    for (let q = 0; q < opts.partitions; q++) {
      const own = byQ?.get(q);
      if (own?.final) {
        carried.set(q, own);
        out.push(own);
        continue;
      }
      const c = carried.get(q);
      if (c && c.start < start && start < c.start + 86_400_000) out.push(c);
    }
    return out;
  };
  const merge = (kind: TrendingKind, start: number, final: boolean): TrendingSnapshot => {
    const all: TrendingPart["items"] = [];
    const end = start + (kind === "1h" ? 3_600_000 : 86_400_000);
    for (const p of partsOf(kind, start, final)) all.push(...p.items);
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
  /** The newest 24 h final emitted: the windows after it that no partition sent hold its list. */
  let lastDayFinal: TrendingSnapshot | undefined;
  /** The start of the newest 24 h window a partition sent a final of. */
  let lastSentDayStart = -Infinity;
  /**
   * Emits the finals of the closed 24 h windows after the last one and before `next` that no
   * partition sent: every partition's list is the one it had, so the merged list is too.
   */
  const repeatDayFinal = (next: number, closed: (start: number) => boolean) => {
    const last = lastDayFinal;
    if (!last || last.items.length === 0) return;
    // Every hour of a partition's window leaves within 24 h, and its partition then sends a
    // final: repeats never run further (a bucket written before partitions sent only changes
    // holds no emptied windows).
    const until = Math.min(next, lastSentDayStart + 86_400_000);
    for (let s = last.windowStart + 3_600_000; s < until && closed(s); s += 3_600_000) {
      if (finalised["24h"].has(s)) continue;
      finalised["24h"].add(s);
      const wm = minWm();
      const final: TrendingSnapshot = {
        ...last,
        windowStart: s,
        windowEnd: s + 86_400_000,
        watermark: wm >= 0 && Number.isFinite(wm) ? wm - opts.oneDayOutOfOrdernessMs : null,
      };
      emit(final);
      lastDayFinal = final;
    }
  };
  const emit = (s: TrendingSnapshot) => {
    // The final of an older window can follow an update of a newer one (its heartbeats came
    // last): a late subscriber starts from the newest window all the same.
    const newest = latest[s.window];
    if (!newest || s.windowStart >= newest.windowStart) latest[s.window] = s;
    subjects[s.window].next(s);
  };

  return {
    updates: (kind) =>
      defer(() => {
        const first = latest[kind];
        return first ? subjects[kind].pipe(startWith(first)) : subjects[kind].asObservable();
      }),
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
        const span = kind === "1h" ? 3_600_000 : 86_400_000;
        const closed = (start: number) => wm >= 0 && wm - ooo >= start + span;
        const starts = [...parts[kind].keys()].sort((a, b) => a - b);
        for (const start of starts) {
          if (kind === "24h") repeatDayFinal(start, closed);
          if (closed(start) && !finalised[kind].has(start)) {
            // Finals at once, whatever the trigger.
            finalised[kind].add(start);
            const final = merge(kind, start, true);
            // A 24 h window every partition has emptied: nothing to say (none held data before).
            if (kind === "1h" || final.items.length > 0) emit(final);
            if (kind === "24h") {
              lastDayFinal = final;
              lastSentDayStart = start;
            }
            parts[kind].delete(start);
            dirty[kind].delete(start);
          }
        }
        if (kind === "24h") repeatDayFinal(Infinity, closed);
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
