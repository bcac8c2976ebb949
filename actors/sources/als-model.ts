import { addObservation, choleskySolve, gram, type AlsModel } from "./als.js";
import { encodeIds, isPacked, packedIds, packIds } from "./als-ids.js";
import { nthLargest, type Scored } from "./types.js";

/**
 * Serving a trained ALS model: COLLABORATIVE candidates for a user, fold-in of users whose
 * events came after the training (their vector solved against the fixed item factors, as one
 * half-step would), and the model as bytes for persistence.
 */
export interface AlsIndex {
  readonly model: AlsModel;
  /** The user's vector: folded in if the user was, else trained; undefined if unknown. */
  vector(user: string): Float32Array | undefined;
  /**
   * Solves the user's vector from their current row (item → value) and keeps it until the next
   * model replaces this one. Items unknown to the model are ignored.
   */
  foldIn(user: string, row: ReadonlyMap<string, number>): void;
  /** The user's best items by predicted preference; `keep` filters before the cut to `n`. */
  candidates(user: string, n: number, keep?: (item: string) => boolean): Scored[];
  /** Bytes held by the factors (what the model costs in memory, maps aside). */
  readonly factorBytes: number;
}

/**
 * Users whose unfiltered top list is kept, and its length (a request for more scans). Users
 * asked in turn, more of them than the cache holds, miss every time (bench step 4 cycles 12.8k
 * users: 8,192 missed every request), so it holds 16,384 (24 MB at 1.5 KB each).
 */
const CACHE_USERS = 16_384;
const CACHE_DEPTH = 128;
const WHY = "liked by users with similar taste";

/** A top list: item indices and scores, best first, `size` of them. */
interface Top {
  idx: Int32Array;
  val: Float64Array;
  size: number;
}

export function createAlsIndex(model: AlsModel): AlsIndex {
  const k = model.settings.rank;
  // Packed (als-ids.ts): a Map and a string per user cost ~90 B/user with a model of 1M users.
  const users = packIds(model.users);
  const itemIndex = new Map<string, number>();
  model.items.forEach((i, x) => itemIndex.set(i, x));
  const folded = new Map<string, Float32Array>();
  let YtY: Float64Array | undefined;

  const vector = (user: string) => {
    const f = folded.get(user);
    if (f) return f;
    const x = users.indexOf(user);
    return x < 0 ? undefined : model.U.subarray(x * k, (x + 1) * k);
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
  /**
   * Unfiltered top lists of recent users (insertion order = least recently used first), as
   * typed arrays: 1.5 KB a user, so many users fit without weighing on the collector.
   */
  const cache = new Map<string, Top>();

  return {
    model,
    vector,
    factorBytes: model.U.byteLength + model.V.byteLength,
    foldIn(user, row) {
      const s = model.settings;
      const V = model.V;
      const A = new Float64Array(k * k);
      const b = new Float64Array(k);
      const x = new Float64Array(k);
      if (s.kind === "implicit") A.set((YtY ??= gram(V, k, s.reg)));
      let n = 0;
      for (const [item, v] of row) {
        const j = itemIndex.get(item);
        if (j === undefined || v <= 0) continue;
        n++;
        addObservation(A, b, V, j, v, s);
      }
      if (n === 0) return;
      if (s.kind === "explicit") for (let f = 0; f < k; f++) A[f * k + f]! += s.reg * n;
      choleskySolve(A, b, k, x);
      folded.set(user, Float32Array.from(x));
      cache.delete(user);
    },
    candidates(user, n, keep) {
      const u = vector(user);
      if (!u) return [];
      if (n > CACHE_DEPTH) return take(scan(u, n, keep), n);
      // A user asks again and again while the model stays the same: their unfiltered top list is
      // kept (LRU), and a request's filter is applied to it. Scoring the catalogue is most of a
      // blended answer's CPU (~0.25 ms for 3.9k items at rank 64: bench/serve-micro.ts).
      let top = cache.get(user);
      if (top) cache.delete(user);
      else top = scan(u, CACHE_DEPTH);
      cache.set(user, top);
      if (cache.size > CACHE_USERS) cache.delete(cache.keys().next().value!);
      const out = take(top, n, keep);
      // The filter left fewer than n of the cached best: unless that was the whole catalogue,
      // only a full scan knows what comes next.
      return out.length === n || top.size < CACHE_DEPTH ? out : take(scan(u, n, keep), n);
    },
  };
}

const MAGIC = 0x414c5331; // "ALS1": the user ids in the JSON header (still read)
const MAGIC2 = 0x414c5332; // "ALS2": the user ids packed after the header (als-ids.ts)

const pad4 = (n: number) => (4 - (n % 4)) % 4;

/** The model's bytes, and where its factors and packed ids start in them. */
function encodeModel(
  m: AlsModel,
  at: number | undefined,
): { out: Uint8Array; start: number; startsAt: number; idsAt: number; idBytes: number } {
  const ids = isPacked(m.users) ? m.users : encodeIds(m.users);
  const n = m.users.length;
  const header = new TextEncoder().encode(
    JSON.stringify({
      settings: m.settings,
      users: n,
      idBytes: ids.bytes.byteLength,
      items: m.items,
      ...(at === undefined ? {} : { at }),
    }),
  );
  const startsAt = 8 + header.length + pad4(8 + header.length);
  const idsAt = startsAt + 4 * n;
  const start = idsAt + ids.bytes.byteLength + pad4(ids.bytes.byteLength);
  const out = new Uint8Array(start + m.U.byteLength + m.V.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC2);
  dv.setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(ids.starts.buffer, ids.starts.byteOffset, 4 * n), startsAt);
  out.set(ids.bytes, idsAt);
  out.set(new Uint8Array(m.U.buffer, m.U.byteOffset, m.U.byteLength), start);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start + m.U.byteLength);
  return { out, start, startsAt, idsAt, idBytes: ids.bytes.byteLength };
}

/**
 * The model as bytes: magic, header length, JSON header (settings, item ids, the number of users
 * and of their ids' bytes, and the input point `at` when given), then where each user id starts
 * (u32), the user ids (u16 length, UTF-8), then U and V, each part 4-byte aligned.
 */
export function serialiseModel(m: AlsModel, at?: number): Uint8Array {
  return encodeModel(m, at).out;
}

/** `n` 4-byte values of `bytes` from `at`: a view when aligned, else a copy. */
function aligned<T>(
  bytes: Uint8Array,
  at: number,
  n: number,
  make: (buf: ArrayBufferLike, off: number, n: number) => T,
  fresh: (n: number) => T & { buffer: ArrayBufferLike },
): T {
  if ((bytes.byteOffset + at) % 4 === 0) return make(bytes.buffer, bytes.byteOffset + at, n);
  const out = fresh(n);
  new Uint8Array(out.buffer).set(bytes.subarray(at, at + 4 * n));
  return out;
}

/** The model of `bytes`, and the input point its header holds (-1 if none). */
function readModel(bytes: Uint8Array): { model: AlsModel; at: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.byteLength < 8 ? 0 : dv.getUint32(0);
  if (magic !== MAGIC && magic !== MAGIC2) throw new Error("not an ALS model");
  const len = dv.getUint32(4);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len))) as Omit<
    AlsModel,
    "U" | "V" | "users"
  > & { at?: number; users: string[] | number; idBytes?: number };
  const { at = -1, users: userField, idBytes = 0, ...rest } = head;
  let start = 8 + len + pad4(8 + len);
  let users: AlsModel["users"];
  if (typeof userField === "number") {
    const starts = aligned(
      bytes,
      start,
      userField,
      (b, o, n) => new Uint32Array(b, o, n),
      (n) => new Uint32Array(n),
    );
    const idsAt = start + 4 * userField;
    users = packedIds(bytes.subarray(idsAt, idsAt + idBytes), starts);
    start = idsAt + idBytes + pad4(idBytes);
  } else users = packIds(userField);
  const k = rest.settings.rank;
  const nU = users.length * k;
  const nV = rest.items.length * k;
  // Views on `bytes` when its factors are 4-byte aligned (bytes of their own, as a snapshot's
  // load and serialiseModel give): one copy of the factors in memory, not two. Else copies.
  const f32 = (b: ArrayBufferLike, o: number, n: number) => new Float32Array(b, o, n);
  const U = aligned(bytes, start, nU, f32, (n) => new Float32Array(n));
  const V = aligned(bytes, start + 4 * nU, nV, f32, (n) => new Float32Array(n));
  return { model: { ...rest, users, U, V }, at };
}

/**
 * The model of `bytes` (its factors are views on `bytes` when aligned: don't reuse `bytes`), its
 * user ids as an array (tools and tests; serving keeps them packed: readStoredModel).
 */
export function deserialiseModel(bytes: Uint8Array): AlsModel {
  const m = readModel(bytes).model;
  return { ...m, users: Array.from({ length: m.users.length }, (_, x) => m.users.at(x)!) };
}

/**
 * A trained model as the collaborative stage keeps it in its state (map "model", one key per
 * kind): the model's bytes with its input point in the header, which the served model's factors
 * are views on. It was `{ at, b64 }` before (still read): the base64 text held the factors a
 * second time, 1.37x their bytes (342 MB at 1M users, rank 64) for as long as the model served.
 */
export type StoredModel = Uint8Array | { at: number; b64: string };

/** The stored form of a model trained at input point `at`, and the model to serve from it. */
export function storeModel(m: AlsModel, at: number): { stored: Uint8Array; model: AlsModel } {
  const { out, start, startsAt, idsAt, idBytes } = encodeModel(m, at);
  // The same items and metrics; the user ids (packed) and the factors become views on the stored
  // bytes (m's are dropped: a million id strings and their map less).
  const users = packedIds(
    out.subarray(idsAt, idsAt + idBytes),
    new Uint32Array(out.buffer, startsAt, m.users.length),
  );
  const U = new Float32Array(out.buffer, start, m.U.length);
  const V = new Float32Array(out.buffer, start + U.byteLength, m.V.length);
  return { stored: out, model: { ...m, users, U, V } };
}

/** The model and its input point from its stored form (either of the two). */
export function readStoredModel(s: StoredModel): { model: AlsModel; at: number } {
  if (s instanceof Uint8Array) return readModel(s);
  return { model: readModel(Buffer.from(s.b64, "base64")).model, at: s.at };
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
