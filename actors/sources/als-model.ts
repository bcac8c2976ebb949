import { addObservation, choleskySolve, gram, type AlsModel } from "./als.js";
import type { Scored } from "./types.js";

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
  const userIndex = new Map<string, number>();
  model.users.forEach((u, x) => userIndex.set(u, x));
  const itemIndex = new Map<string, number>();
  model.items.forEach((i, x) => itemIndex.set(i, x));
  const folded = new Map<string, Float32Array>();
  let YtY: Float64Array | undefined;

  const vector = (user: string) => {
    const f = folded.get(user);
    if (f) return f;
    const x = userIndex.get(user);
    return x === undefined ? undefined : model.U.subarray(x * k, (x + 1) * k);
  };

  /** The item factors in doubles (built at the first scan): no conversion in the hot loop. */
  let V64: Float64Array | undefined;

  /** The n best items for the factor vector `u` that `keep` allows, best first (ties by id). */
  const scan = (u: Float32Array, n: number, keep?: (item: string) => boolean): Top => {
    const V = (V64 ??= Float64Array.from(model.V));
    const items = model.items;
    const uv = Float64Array.from(u);
    const k4 = k - (k % 4);
    // A bounded selection (no full sort of the catalogue): the n best so far, best first.
    const idx = new Int32Array(n);
    const val = new Float64Array(n);
    let size = 0;
    for (let j = 0; j < items.length; j++) {
      const o = j * k;
      // Four partial sums: one chain of dependent additions is ~1.3x slower (measured with
      // bench/serve-micro.ts); scores differ from a one-by-one sum in the last bits only.
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
      const s = s0 + s1 + (s2 + s3);
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

const MAGIC = 0x414c5331; // "ALS1"

/** The model's bytes and where its factors start in them. */
function encodeModel(m: AlsModel, at: number | undefined): { out: Uint8Array; start: number } {
  const header = new TextEncoder().encode(
    JSON.stringify({
      settings: m.settings,
      users: m.users,
      items: m.items,
      ...(at === undefined ? {} : { at }),
    }),
  );
  const pad = (4 - ((8 + header.length) % 4)) % 4;
  const start = 8 + header.length + pad;
  const out = new Uint8Array(start + m.U.byteLength + m.V.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC);
  dv.setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(m.U.buffer, m.U.byteOffset, m.U.byteLength), start);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start + m.U.byteLength);
  return { out, start };
}

/**
 * The model as bytes: magic, header length, JSON header (settings, ids, and the input point `at`
 * when given), then U and V, 4-byte aligned.
 */
export function serialiseModel(m: AlsModel, at?: number): Uint8Array {
  return encodeModel(m, at).out;
}

/** The model of `bytes`, and the input point its header holds (-1 if none). */
function readModel(bytes: Uint8Array): { model: AlsModel; at: number } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || dv.getUint32(0) !== MAGIC) throw new Error("not an ALS model");
  const len = dv.getUint32(4);
  const { at = -1, ...head } = JSON.parse(
    new TextDecoder().decode(bytes.subarray(8, 8 + len)),
  ) as Omit<AlsModel, "U" | "V"> & { at?: number };
  const start = 8 + len + ((4 - ((8 + len) % 4)) % 4);
  const k = head.settings.rank;
  const nU = head.users.length * k;
  const nV = head.items.length * k;
  // Views on `bytes` when its factors are 4-byte aligned (bytes of their own, as a snapshot's
  // load and serialiseModel give): one copy of the factors in memory, not two. Else copies.
  if ((bytes.byteOffset + start) % 4 === 0) {
    const U = new Float32Array(bytes.buffer, bytes.byteOffset + start, nU);
    const V = new Float32Array(bytes.buffer, bytes.byteOffset + start + U.byteLength, nV);
    return { model: { ...head, U, V }, at };
  }
  const U = new Float32Array(nU);
  const V = new Float32Array(nV);
  new Uint8Array(U.buffer).set(bytes.subarray(start, start + U.byteLength));
  new Uint8Array(V.buffer).set(
    bytes.subarray(start + U.byteLength, start + U.byteLength + V.byteLength),
  );
  return { model: { ...head, U, V }, at };
}

/** The model of `bytes` (its factors are views on `bytes` when aligned: don't reuse `bytes`). */
export function deserialiseModel(bytes: Uint8Array): AlsModel {
  return readModel(bytes).model;
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
  const { out, start } = encodeModel(m, at);
  // The same ids and metrics; the factors become views on the stored bytes (m's are dropped).
  const U = new Float32Array(out.buffer, start, m.U.length);
  const V = new Float32Array(out.buffer, start + U.byteLength, m.V.length);
  return { stored: out, model: { ...m, U, V } };
}

/** The model and its input point from its stored form (either of the two). */
export function readStoredModel(s: StoredModel): { model: AlsModel; at: number } {
  if (s instanceof Uint8Array) return readModel(s);
  return { model: readModel(Buffer.from(s.b64, "base64")).model, at: s.at };
}
