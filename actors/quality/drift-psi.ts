/**
 * Population stability index (DESIGN §7): how far the traffic of the last hour of event time has
 * moved from the 24 h before it, for three mixes: main categories, event types and item
 * popularity. Pure: the drift stage (actors/stages/drift.ts) keeps the counts, this reads them.
 *
 * PSI = Σ (a − e) · ln(a / e) over bins, a and e the shares of the recent and the reference
 * window, each floored at `epsilon` so a bin empty on one side counts (and stays finite). Rules
 * of thumb: under 0.1 no shift, 0.1–0.25 a moderate one, over 0.25 a large one.
 *
 * The reference is the 24 h BEFORE the last hour, not the 24 h that include it: a shift would
 * otherwise dilute its own reference (by 1/25 at constant traffic, much more after a quiet day).
 * Many-valued mixes (categories, items) are binned: the `topBins` values with the most events in
 * either window, and one bin for the rest. For items that reads as "the shares of the hottest
 * items": a new hit, or yesterday's hits going cold, moves it; the long tail does not.
 */
export type DriftDimension = "category" | "event_type" | "item_popularity";
export const DRIFT_DIMENSIONS: readonly DriftDimension[] = [
  "category",
  "event_type",
  "item_popularity",
];

/** Counts of one time bucket. */
export interface BucketCounts {
  n: number;
  category: Map<string, number>;
  event_type: Map<string, number>;
  item_popularity: Map<string, number>;
}

export const emptyBucket = (): BucketCounts => ({
  n: 0,
  category: new Map(),
  event_type: new Map(),
  item_popularity: new Map(),
});

export interface DriftSettings {
  /** Bucket size (ms); the windows are whole buckets. */
  bucketMs: number;
  /** The recent window (1 h). */
  recentMs: number;
  /** The reference window before it (24 h). */
  referenceMs: number;
  /** Values kept as their own bin (the rest is one bin). */
  topBins: number;
  /** Share floor of an empty bin. */
  epsilon: number;
}

export const DRIFT_DEFAULTS: DriftSettings = {
  bucketMs: 300_000,
  recentMs: 3_600_000,
  referenceMs: 86_400_000,
  topBins: 20,
  epsilon: 1e-4,
};

export interface MixShare {
  value: string;
  recent: number;
  reference: number;
}

export interface DriftReport {
  /** Event time the windows end at (epoch ms); -1 before any event. */
  at: number;
  events: { recent: number; reference: number };
  psi: Record<DriftDimension, number>;
  /** Each mix's bins, largest contribution to the PSI first (for the console). */
  bins: Record<DriftDimension, MixShare[]>;
}

const OTHER = "(other)";

/** The PSI of two count maps, binned as above; 0 when either side has no events. */
export function psiOf(
  recent: ReadonlyMap<string, number>,
  reference: ReadonlyMap<string, number>,
  s: Pick<DriftSettings, "topBins" | "epsilon">,
): { psi: number; bins: MixShare[] } {
  const total = (m: ReadonlyMap<string, number>) => {
    let t = 0;
    for (const v of m.values()) t += v;
    return t;
  };
  const nr = total(recent);
  const ne = total(reference);
  if (nr === 0 || ne === 0) return { psi: 0, bins: [] };
  const top = (m: ReadonlyMap<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, s.topBins)
      .map(([k]) => k);
  const kept = new Set([...top(recent), ...top(reference)]);
  const binned = (m: ReadonlyMap<string, number>) => {
    const out = new Map<string, number>();
    for (const [k, v] of m) {
      const b = kept.has(k) ? k : OTHER;
      out.set(b, (out.get(b) ?? 0) + v);
    }
    return out;
  };
  const br = binned(recent);
  const be = binned(reference);
  let psi = 0;
  const bins: (MixShare & { part: number })[] = [];
  for (const value of new Set([...br.keys(), ...be.keys()])) {
    const a = (br.get(value) ?? 0) / nr;
    const e = (be.get(value) ?? 0) / ne;
    const fa = Math.max(a, s.epsilon);
    const fe = Math.max(e, s.epsilon);
    const part = (fa - fe) * Math.log(fa / fe);
    psi += part;
    bins.push({ value, recent: a, reference: e, part });
  }
  bins.sort((x, y) => y.part - x.part || (x.value < y.value ? -1 : 1));
  return { psi, bins: bins.map(({ value, recent, reference }) => ({ value, recent, reference })) };
}

/**
 * The report at event time `at` from buckets keyed by their start: recent = the buckets that
 * start within `recentMs` up to `at`'s bucket, reference = the `referenceMs` of buckets before.
 */
export function driftReport(
  buckets: Iterable<readonly [number, BucketCounts]>,
  at: number,
  s: DriftSettings = DRIFT_DEFAULTS,
): DriftReport {
  const recent = emptyBucket();
  const reference = emptyBucket();
  const zero = { category: 0, event_type: 0, item_popularity: 0 };
  if (at < 0)
    return {
      at,
      events: { recent: 0, reference: 0 },
      psi: zero,
      bins: { category: [], event_type: [], item_popularity: [] },
    };
  const last = at - (at % s.bucketMs);
  const recentFrom = last - s.recentMs + s.bucketMs;
  const referenceFrom = recentFrom - s.referenceMs;
  for (const [start, b] of buckets) {
    const into =
      start >= recentFrom && start <= last
        ? recent
        : start >= referenceFrom && start < recentFrom
          ? reference
          : undefined;
    if (!into) continue;
    into.n += b.n;
    for (const d of DRIFT_DIMENSIONS)
      for (const [k, v] of b[d]) into[d].set(k, (into[d].get(k) ?? 0) + v);
  }
  const psi = { ...zero };
  const bins: DriftReport["bins"] = { category: [], event_type: [], item_popularity: [] };
  for (const d of DRIFT_DIMENSIONS) {
    const r = psiOf(recent[d], reference[d], s);
    psi[d] = r.psi;
    bins[d] = r.bins;
  }
  return { at, events: { recent: recent.n, reference: reference.n }, psi, bins };
}
