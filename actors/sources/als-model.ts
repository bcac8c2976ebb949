import { choleskySolve } from "./als-cholesky.js";
import { servedModel, type AlsModel, type ServedModel } from "./als-served.js";
import { addObservation, gram, inverseSpd } from "./als-solve.js";
import { nthLargest, type Scored } from "./types.js";

/**
 * Serving a trained ALS model: COLLABORATIVE candidates for a user from a vector solved from the
 * user's current row against the model's fixed item factors (the fold-in least squares, one ALS
 * half-step for one user) when first asked for, and the model as bytes for persistence. The model
 * keeps no user factors (als-served.ts ServedModel): a user's vector and top list are kept in a bounded
 * LRU while their row stays the same, so memory does not grow with the users asked.
 */
export interface AlsIndex {
  readonly model: ServedModel;
  /**
   * The user's vector: solved from their current row (kept while it stays the same); undefined
   * if the user has no row or none of its items is known to the model.
   */
  vector(user: string): Float32Array | undefined;
  /** The user's best items by predicted preference; `keep` filters before the cut to `n`. */
  candidates(user: string, n: number, keep?: (item: string) => boolean): Scored[];
  /** Bytes held by the factors (what the model costs in memory, maps aside). */
  readonly factorBytes: number;
  /** Vectors solved so far (a user asked again after their row changed, or evicted, counts again). */
  readonly solved: number;
  /** Users held by the LRU, and the bytes of their vectors and top lists. */
  cached(): { users: number; bytes: number };
}

/** A user's current row, as the collaborative source keeps it (als-matrix.ts). */
export interface UserRows {
  /** A number that changes whenever the user's row changes (its input point); -1: no row. */
  changedAt(user: string): number;
  /** The user's values by item id. */
  row(user: string): ReadonlyMap<string, number> | undefined;
}

/**
 * Users whose vector and unfiltered top list are kept, and the list's length (a request for more
 * scans). Users asked in turn, more of them than the cache holds, miss every time (bench step 4
 * cycles 12.8k users: 8,192 missed every request), so it holds 16,384: at rank 64 a vector of
 * 256 B and a list of 1.5 KB, ~2.5 KB a user with the objects around them (~40 MB; test/sources-als-cache).
 */
export const CACHE_USERS = 16_384;
const CACHE_DEPTH = 128;
const WHY = "liked by users with similar taste";

/** A top list: item indices and scores, best first, `size` of them. */
interface Top {
  idx: Int32Array;
  val: Float64Array;
  size: number;
}

/** What the LRU holds for a user: the row's stamp it was solved at, the vector, the top list. */
interface Entry {
  stamp: number;
  u: Float32Array | undefined;
  top: Top | undefined;
}

/**
 * The index of `model`. Vectors come from `rows` (the collaborative source's rows); without
 * `rows`, a model as training gives it serves its trained user factors (tools and tests that
 * hand the index vectors of their own; never the engine, which serves one answer whether the
 * model came from a training or from disk).
 */
export function createAlsIndex(
  m: AlsModel | ServedModel,
  rows?: UserRows,
  o: { cacheUsers?: number } = {},
): AlsIndex {
  const model = servedModel(m);
  const k = model.settings.rank;
  const cacheUsers = o.cacheUsers ?? CACHE_USERS;
  const itemIndex = new Map<string, number>();
  model.items.forEach((i, x) => itemIndex.set(i, x));
  let YtY: Float64Array | undefined;
  /** (VᵀV + λI)⁻¹, for the Woodbury fold-in of short rows (built at the first one). */
  let inv: Float64Array | undefined;
  const fold = foldScratch(k);
  let solved = 0;
  let cachedBytes = 0;
  const trained = typeof m.users === "number" ? undefined : (m as AlsModel);
  let trainedAt: Map<string, number> | undefined;

  /** The user's vector from their row, solved against V: undefined if no item of it is known. */
  const A = new Float64Array(k * k);
  const b = new Float64Array(k);
  const x = new Float64Array(k);
  const short = { j: new Int32Array(FOLD_WOODBURY_MAX), v: new Float64Array(FOLD_WOODBURY_MAX) };
  const solve = (row: ReadonlyMap<string, number>): Float32Array | undefined => {
    const s = model.settings;
    const V = model.V;
    if (s.kind === "implicit") {
      YtY ??= model.YtY ?? gram(V, k, s.reg);
      // A short row (most of a shop's users): by Woodbury against (VᵀV + λI)⁻¹, kept per model.
      let n = 0;
      for (const [item, v] of row) {
        const j = itemIndex.get(item);
        if (j === undefined || v <= 0) continue;
        if (n === FOLD_WOODBURY_MAX) {
          n = -1;
          break;
        }
        short.j[n] = j;
        short.v[n++] = v;
      }
      if (n === 0) return undefined;
      // (α > 0: D = diag(α r) is inverted; α = 0 is the plain least squares below.)
      if (n > 0 && s.alpha > 0) {
        woodburyFold((inv ??= inverseSpd(YtY, k)), V, k, s.alpha, short.j, short.v, n, fold, x);
        solved++;
        return Float32Array.from(x);
      }
      A.set(YtY);
    } else A.fill(0);
    b.fill(0);
    let n = 0;
    for (const [item, v] of row) {
      const j = itemIndex.get(item);
      if (j === undefined || v <= 0) continue;
      n++;
      addObservation(A, b, V, j, v, s);
    }
    if (n === 0) return undefined;
    if (s.kind === "explicit") for (let f = 0; f < k; f++) A[f * k + f]! += s.reg * n;
    choleskySolve(A, b, k, x);
    solved++;
    return Float32Array.from(x);
  };

  /**
   * Recent users (insertion order = least recently used first), at most `cacheUsers`: typed
   * arrays, so many users fit without weighing on the collector.
   */
  const cache = new Map<string, Entry>();
  const bytesOf = (e: Entry) =>
    (e.u?.byteLength ?? 0) + (e.top ? e.top.idx.byteLength + e.top.val.byteLength : 0);
  const remember = (user: string, e: Entry) => {
    const old = cache.get(user);
    if (old) {
      cachedBytes -= bytesOf(old);
      cache.delete(user);
    }
    cache.set(user, e);
    cachedBytes += bytesOf(e);
    if (cache.size > cacheUsers) {
      const first = cache.keys().next().value!;
      cachedBytes -= bytesOf(cache.get(first)!);
      cache.delete(first);
    }
  };
  /** The user's entry, its vector solved again if their row changed since (or never kept). */
  const entry = (user: string): Entry | undefined => {
    let stamp: number;
    if (rows) stamp = rows.changedAt(user);
    else {
      trainedAt ??= new Map(trained?.users.map((u, x) => [u, x]));
      stamp = trainedAt.get(user) ?? -1;
    }
    if (stamp < 0) return undefined;
    const e = cache.get(user);
    if (e && e.stamp === stamp) {
      // Most recently used now.
      cache.delete(user);
      cache.set(user, e);
      return e;
    }
    let u: Float32Array | undefined;
    if (rows) {
      const row = rows.row(user);
      u = row && solve(row);
    } else u = trained!.U.subarray(stamp * k, (stamp + 1) * k);
    const fresh: Entry = { stamp, u, top: undefined };
    remember(user, fresh);
    return fresh;
  };

  /** The item factors in doubles (built at the first scan): no conversion in the hot loop. */
  let V64: Float64Array | undefined;
  /** Every item's score for the last vector scanned, and a copy to select in (reused). */
  let scores = new Float64Array(0);
  let work = new Float64Array(0);

  /** The n best items for the factor vector `u` that `keep` allows, best first (ties by id). */
  const scan = (u: Float32Array, n: number, keep?: (item: string) => boolean): Top => {
    const V = (V64 ??= Float64Array.from(model.V));
    const items = model.items;
    if (scores.length !== items.length) {
      scores = new Float64Array(items.length);
      work = new Float64Array(items.length);
    }
    // NaN scores (never from a solved model) keep the insertion selection's own order.
    const plain = scoreAll(Float64Array.from(u), V, k, scores);
    return keep || n <= 0 || !plain
      ? selectKept(scores, items, n, keep)
      : selectTop(scores, work, items, n);
  };
  /** The first n of a top list that `keep` allows, as candidates. */
  const take = (top: Top, n: number, keep?: (item: string) => boolean): Scored[] => {
    const out: Scored[] = [];
    for (let x = 0; x < top.size && out.length < n; x++) {
      const item = model.items[top.idx[x]!]!;
      if (!keep || keep(item)) out.push({ item, score: top.val[x]!, why: WHY });
    }
    return out;
  };

  return {
    model,
    vector: (user) => entry(user)?.u,
    factorBytes: model.V.byteLength,
    get solved() {
      return solved;
    },
    cached: () => ({ users: cache.size, bytes: cachedBytes }),
    candidates(user, n, keep) {
      const e = entry(user);
      const u = e?.u;
      if (!e || !u) return [];
      if (n > CACHE_DEPTH) return take(scan(u, n, keep), n);
      // A user asks again and again while the model and their row stay the same: their
      // unfiltered top list is kept, and a request's filter is applied to it. Scoring the
      // catalogue is most of a blended answer's CPU (~0.25 ms for 3.9k items at rank 64:
      // bench/serve-micro.ts).
      let top = e.top;
      if (!top) {
        top = e.top = scan(u, CACHE_DEPTH);
        // Still held unless this user's entry was the one evicted (a cache of one user).
        if (cache.get(user) === e) cachedBytes += top.idx.byteLength + top.val.byteLength;
      }
      const out = take(top, n, keep);
      // The filter left fewer than n of the cached best: unless that was the whole catalogue,
      // only a full scan knows what comes next.
      return out.length === n || top.size < CACHE_DEPTH ? out : take(scan(u, n, keep), n);
    },
  };
}

/**
 * Rows with at most this many known items are folded in by the Woodbury identity: n·k² + n²·k/2
 * multiplications instead of building VᵀV + λI + Σ α r y yᵀ (n·k²/2) and factoring it (k³/6).
 * At rank 64, over 6,000 items, a row of one item took 19 µs against 87, of three 28 against
 * 111, of six 41 against 141, of twelve 89 against 154 or more.
 */
export const FOLD_WOODBURY_MAX = 16;

interface FoldScratch {
  /** z_a = A₀⁻¹ y_a for the row's items, row by row. */
  Z: Float64Array;
  M: Float64Array;
  g: Float64Array;
  h: Float64Array;
  /** The item's factors in doubles. */
  y: Float64Array;
}

function foldScratch(k: number): FoldScratch {
  const m = FOLD_WOODBURY_MAX;
  return {
    Z: new Float64Array(m * k),
    M: new Float64Array(m * m),
    g: new Float64Array(m),
    h: new Float64Array(m),
    y: new Float64Array(k),
  };
}

/**
 * The implicit fold-in x = (A₀ + Yₙᵀ D Yₙ)⁻¹ Yₙᵀ c of a row of n items (indices `j`, values `v`),
 * A₀ = VᵀV + λI given by its inverse, D = diag(α v), c = 1 + α v: with z_a = A₀⁻¹ y_a,
 * x = Σ c_a z_a − Σ h_a z_a where (D⁻¹ + Yₙ A₀⁻¹ Yₙᵀ) h = Yₙ Σ c_a z_a.
 */
function woodburyFold(
  inv: Float64Array,
  V: Float32Array,
  k: number,
  alpha: number,
  j: Int32Array,
  v: Float64Array,
  n: number,
  t: FoldScratch,
  x: Float64Array,
) {
  const { Z, M, g, h, y } = t;
  x.fill(0);
  for (let a = 0; a < n; a++) {
    const yo = j[a]! * k;
    const zo = a * k;
    for (let f = 0; f < k; f++) y[f] = V[yo + f]!;
    // z_a = A₀⁻¹ y_a, four rows of A₀⁻¹ at a time (independent sums: a busier CPU).
    let r = 0;
    for (; r + 3 < k; r += 4) {
      const o0 = r * k;
      const o1 = o0 + k;
      const o2 = o1 + k;
      const o3 = o2 + k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let c = 0; c < k; c++) {
        const yc = y[c]!;
        s0 += inv[o0 + c]! * yc;
        s1 += inv[o1 + c]! * yc;
        s2 += inv[o2 + c]! * yc;
        s3 += inv[o3 + c]! * yc;
      }
      Z[zo + r] = s0;
      Z[zo + r + 1] = s1;
      Z[zo + r + 2] = s2;
      Z[zo + r + 3] = s3;
    }
    for (; r < k; r++) {
      let acc = 0;
      for (let c = 0; c < k; c++) acc += inv[r * k + c]! * y[c]!;
      Z[zo + r] = acc;
    }
    const c = 1 + alpha * v[a]!;
    for (let f = 0; f < k; f++) x[f]! += c * Z[zo + f]!;
  }
  // Only M's lower triangle is written and read (choleskySolve).
  for (let a = 0; a < n; a++) {
    const ya = j[a]! * k;
    let gx = 0;
    for (let f = 0; f < k; f++) gx += V[ya + f]! * x[f]!;
    g[a] = gx;
    for (let b = 0; b <= a; b++) {
      const zb = b * k;
      let d = 0;
      for (let f = 0; f < k; f++) d += V[ya + f]! * Z[zb + f]!;
      M[a * n + b] = d;
    }
    M[a * n + a]! += 1 / (alpha * v[a]!);
  }
  choleskySolve(M, g, n, h);
  for (let a = 0; a < n; a++) {
    const zo = a * k;
    const ha = h[a]!;
    for (let f = 0; f < k; f++) x[f]! -= ha * Z[zo + f]!;
  }
}

/**
 * `out[j]` = the dot product of `uv` and item j's factors (row j of `V`, rank k), as four partial
 * sums: one chain of dependent additions is ~1.3x slower (bench/serve-micro.ts); scores differ
 * from a one-by-one sum in the last bits only. Two items at a time (each with its own four sums,
 * added in the same order: the same bits): the independent chains keep the CPU busier, ~15% less
 * time than one at a time for 3.9k items at rank 64. False if a score is NaN.
 */
function scoreAll(uv: Float64Array, V: Float64Array, k: number, out: Float64Array): boolean {
  const nItems = out.length;
  const k4 = k - (k % 4);
  let j = 0;
  for (; j + 1 < nItems; j += 2) {
    const o = j * k;
    const p = o + k;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let t0 = 0;
    let t1 = 0;
    let t2 = 0;
    let t3 = 0;
    let f = 0;
    for (; f < k4; f += 4) {
      const u0 = uv[f]!;
      const u1 = uv[f + 1]!;
      const u2 = uv[f + 2]!;
      const u3 = uv[f + 3]!;
      s0 += u0 * V[o + f]!;
      s1 += u1 * V[o + f + 1]!;
      s2 += u2 * V[o + f + 2]!;
      s3 += u3 * V[o + f + 3]!;
      t0 += u0 * V[p + f]!;
      t1 += u1 * V[p + f + 1]!;
      t2 += u2 * V[p + f + 2]!;
      t3 += u3 * V[p + f + 3]!;
    }
    for (; f < k; f++) {
      s0 += uv[f]! * V[o + f]!;
      t0 += uv[f]! * V[p + f]!;
    }
    out[j] = s0 + s1 + (s2 + s3);
    out[j + 1] = t0 + t1 + (t2 + t3);
  }
  for (; j < nItems; j++) {
    const o = j * k;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let f = 0;
    for (; f < k4; f += 4) {
      s0 += uv[f]! * V[o + f]!;
      s1 += uv[f + 1]! * V[o + f + 1]!;
      s2 += uv[f + 2]! * V[o + f + 2]!;
      s3 += uv[f + 3]! * V[o + f + 3]!;
    }
    for (; f < k; f++) s0 += uv[f]! * V[o + f]!;
    out[j] = s0 + s1 + (s2 + s3);
  }
  for (let x = 0; x < nItems; x++) if (Number.isNaN(out[x])) return false;
  return true;
}

/**
 * The first n items by score (ties by id) that `keep` allows: a bounded insertion selection
 * (what a filtered request needs: how deep it goes depends on the filter).
 */
function selectKept(
  scores: Float64Array,
  items: readonly string[],
  n: number,
  keep: ((item: string) => boolean) | undefined,
): Top {
  const idx = new Int32Array(Math.max(0, n));
  const val = new Float64Array(Math.max(0, n));
  let size = 0;
  if (n <= 0) return { idx, val, size };
  for (let j = 0; j < scores.length; j++) {
    const s = scores[j]!;
    if (size === n && (s < val[n - 1]! || (s === val[n - 1]! && items[j]! > items[idx[n - 1]!]!)))
      continue;
    if (keep && !keep(items[j]!)) continue;
    let at = size < n ? size++ : n - 1;
    while (
      at > 0 &&
      (s > val[at - 1]! || (s === val[at - 1]! && items[j]! < items[idx[at - 1]!]!))
    ) {
      idx[at] = idx[at - 1]!;
      val[at] = val[at - 1]!;
      at--;
    }
    idx[at] = j;
    val[at] = s;
  }
  return { idx, val, size };
}

/**
 * The first n items by score (ties by id), unfiltered: the n-th best score found by selection
 * in a copy (expected linear time), then only the items scoring at least that much are sorted.
 * The same list as the insertion selection, which moved entries at most of its ~n insertions
 * while its bar rose (~18% of a catalogue scan at n = 128).
 */
function selectTop(
  scores: Float64Array,
  work: Float64Array,
  items: readonly string[],
  n: number,
): Top {
  const total = scores.length;
  const take = Math.min(n, total);
  const idx = new Int32Array(n);
  const val = new Float64Array(n);
  if (take === 0) return { idx, val, size: 0 };
  work.set(scores);
  const bar = nthLargest(work, take);
  const chosen: number[] = [];
  for (let j = 0; j < total; j++) if (scores[j]! >= bar) chosen.push(j);
  chosen.sort((a, b) => {
    const sa = scores[a]!;
    const sb = scores[b]!;
    return sb - sa || (items[a]! < items[b]! ? -1 : items[a]! > items[b]! ? 1 : 0);
  });
  for (let x = 0; x < take; x++) {
    idx[x] = chosen[x]!;
    val[x] = scores[chosen[x]!]!;
  }
  return { idx, val, size: take };
}
