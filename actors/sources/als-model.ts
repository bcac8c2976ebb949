import { choleskySolve, gram, type AlsModel } from "./als.js";
import { byScoreThenId, type Scored } from "./types.js";

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

/** Users whose unfiltered top list is kept, and its length (a request for more scans). */
const CACHE_USERS = 2048;
const CACHE_DEPTH = 128;

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

  /** The n best items for the factor vector `u` that `keep` allows, best first. */
  const scan = (u: Float32Array, n: number, keep?: (item: string) => boolean): Scored[] => {
    const V = model.V;
    // A bounded selection (no full sort of the catalogue): keep the n best seen so far.
    const best: Scored[] = [];
    for (let j = 0; j < model.items.length; j++) {
      let s = 0;
      const o = j * k;
      for (let f = 0; f < k; f++) s += u[f]! * V[o + f]!;
      if (best.length === n && s <= best[n - 1]!.score) continue;
      const item = model.items[j]!;
      if (keep && !keep(item)) continue;
      const c: Scored = { item, score: s, why: "liked by users with similar taste" };
      let at = best.length < n ? best.length : n - 1;
      while (at > 0 && byScoreThenId(c, best[at - 1]!) < 0) {
        best[at] = best[at - 1]!;
        at--;
      }
      best[at] = c;
    }
    return best;
  };
  /** Unfiltered top lists of recent users (insertion order = least recently used first). */
  const cache = new Map<string, Scored[]>();

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
        const wa = s.kind === "implicit" ? s.alpha * v : 1;
        const wb = s.kind === "implicit" ? 1 + s.alpha * v : v;
        for (let f = 0; f < k; f++) {
          const yf = V[j * k + f]!;
          b[f]! += wb * yf;
          for (let g = 0; g <= f; g++) A[f * k + g]! += wa * yf * V[j * k + g]!;
        }
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
      if (n > CACHE_DEPTH) return scan(u, n, keep);
      // A user asks again and again while the model stays the same: their unfiltered top list is
      // kept (LRU), and a request's filter is applied to it. Scoring the catalogue costs ~1.2 ms
      // per call on REES46's head (6.5k items, rank 64): 97% of a blended answer's CPU.
      let top = cache.get(user);
      if (top) cache.delete(user);
      else top = scan(u, CACHE_DEPTH);
      cache.set(user, top);
      if (cache.size > CACHE_USERS) cache.delete(cache.keys().next().value!);
      if (!keep) return top.slice(0, n);
      const out: Scored[] = [];
      for (const c of top) {
        if (!keep(c.item)) continue;
        out.push(c);
        if (out.length === n) return out;
      }
      // The filter left fewer than n of the cached best: unless that was the whole catalogue,
      // only a full scan knows what comes next.
      return top.length < CACHE_DEPTH ? out : scan(u, n, keep);
    },
  };
}

const MAGIC = 0x414c5331; // "ALS1"

/** The model as bytes: magic, header length, JSON header (settings, ids), then U and V. */
export function serialiseModel(m: AlsModel): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ settings: m.settings, users: m.users, items: m.items }),
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
  return out;
}

export function deserialiseModel(bytes: Uint8Array): AlsModel {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || dv.getUint32(0) !== MAGIC) throw new Error("not an ALS model");
  const len = dv.getUint32(4);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len))) as Omit<
    AlsModel,
    "U" | "V"
  >;
  const start = 8 + len + ((4 - ((8 + len) % 4)) % 4);
  const k = head.settings.rank;
  // Copies: the factors must be 4-byte aligned whatever the offset of `bytes`.
  const U = new Float32Array(head.users.length * k);
  const V = new Float32Array(head.items.length * k);
  new Uint8Array(U.buffer).set(bytes.subarray(start, start + U.byteLength));
  new Uint8Array(V.buffer).set(
    bytes.subarray(start + U.byteLength, start + U.byteLength + V.byteLength),
  );
  return { ...head, U, V };
}
