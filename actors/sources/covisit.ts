import { createItemIds, ItemEdges, toItemEdges, type ItemIds } from "./item-edges.js";
import type { Edge, Neighbours } from "./neighbours.js";
import type { SourcePreset } from "./preset.js";
import { recentItems, type Recent, type RecentItems } from "./recent-items.js";
import { memStore, type KeyStore } from "./store.js";
import { createCovisitReader, type CovisitPart, type CovisitReader } from "./covisit-read.js";
import { decay, nthBest, type SourceEvent } from "./types.js";

/**
 * SIMILAR_ITEMS: item-to-item co-visitation (DESIGN §3.7). Two items touched by the same user
 * within one session or within `windowMs` of event time are neighbours; each such pair adds the
 * stronger of the two interaction weights, decayed by event time. Each item keeps at most `k`
 * neighbours (the weakest are dropped once it holds 3k), and each user's recent items are a
 * bounded list: memory is O(items × k + users × recentPerUser), whatever the number of events.
 *
 * The data is per item (neighbours, total weight) and per user (recent items), in stores (the
 * stage's state): pair weights are sums over every user's events, so the stage that holds them
 * is fed in one order (EVENTS order) to be exact.
 *
 * Similarity is the co-visitation weight divided by the square root of the two items' total
 * weights (cosine on the co-visitation counts), so a neighbour is one seen *with* the item, not
 * merely one seen everywhere.
 */
export interface CovisitOptions {
  preset: SourcePreset;
  /** Two interactions without a common session are neighbours within this much time (1 h). */
  windowMs?: number;
  /** Event time for a pair's weight to halve (default 7 days). */
  halfLifeMs?: number;
  /** Neighbours kept per item (default 50). */
  k?: number;
  /** Recent items remembered per user to pair new ones with (default 30). */
  recentPerUser?: number;
  /** Cosine normalisation (default true); false ranks by raw co-visitation weight. */
  normalise?: boolean;
}

/** Neighbour lists `add` holds between flushes at most (a bound on memory). */
const MAX_HELD = 50_000;

/** Where co-visitation keeps its data (the covisit stage's state maps). */
export interface CovisitStores {
  /**
   * Neighbours per item, by neighbour id (a stage's map decodes its stored bytes:
   * neighbours.ts; a text map would hand out the entries).
   */
  edges: KeyStore<ItemEdges | Neighbours | [string, Edge][]>;
  /**
   * The numbering of item ids that `edges`' codec decodes with (item-edges.ts itemEdgesCodec),
   * if it does; otherwise co-visitation numbers them itself.
   */
  ids?: ItemIds;
  /** Decayed total weight per item. */
  mass: KeyStore<Edge>;
  /** Recent items per user, oldest first (stored as `Recent[]`; recent-items.ts's live form). */
  recent: KeyStore<Recent[] | RecentItems>;
}

export const memCovisitStores = (): CovisitStores => ({
  edges: memStore(),
  mass: memStore(),
  recent: memStore(),
});

/** What readers of co-visitation ask of it: one partition's, or several read together. */
export type SimilarItemsReads = CovisitReader;

export interface SimilarItemsSource extends SimilarItemsReads {
  add(e: SourceEvent): void;
  /**
   * Lets go of the neighbour lists `add` changed since the last flush. `add` sets a list in the
   * store (marks it changed) when it first changes it after a flush, not at every pair: a store
   * that snapshots changed keys must see a flush before each snapshot (a stage flushes after each
   * batch; snapshots are taken between batches).
   */
  flush(): void;
  /** This instance's data as one partition of a reader over several (covisit-read.ts). */
  readonly part: CovisitPart;
}

/**
 * Co-visitation over several partitions' data, read together (every pair's weight and every
 * item's mass summed in partition order, covisit-read.ts): what serving reads of the
 * per-partition covisit stages. The partitions must share one item numbering.
 */
export function readCovisit(
  opts: CovisitOptions,
  parts: readonly CovisitPart[],
): SimilarItemsReads {
  return createCovisitReader(readOptions(opts), parts);
}

const readOptions = (opts: CovisitOptions) => ({
  preset: opts.preset,
  halfLifeMs: opts.halfLifeMs ?? 7 * 86_400_000,
  k: opts.k ?? 50,
  normalise: opts.normalise ?? true,
});

export function createCovisit(
  opts: CovisitOptions,
  stores: CovisitStores = memCovisitStores(),
): SimilarItemsSource {
  const windowMs = opts.windowMs ?? 3_600_000;
  const halfLife = opts.halfLifeMs ?? 7 * 86_400_000;
  const k = opts.k ?? 50;
  const recentCap = opts.recentPerUser ?? 30;
  const { edges, mass, recent } = stores;
  const ids = stores.ids ?? createItemIds();
  const names = ids.names;
  /** A stored value as the live form (a value from another codec or a load: converted). */
  const live = (v: ItemEdges | Neighbours | [string, Edge][] | undefined) =>
    v === undefined || (v instanceof ItemEdges && v.ids === ids)
      ? v
      : toItemEdges(v instanceof ItemEdges ? v.toJSON() : v, ids);
  /** The item's stored neighbours. A read does not set the key, so serving never makes it dirty. */
  const edgesOf = (item: string): ItemEdges | undefined => live(edges.get(item));
  /**
   * The lists `add` changed since the last flush, by item number, and those numbers: read from
   * `edges` and set there once, then changed in place from here (a read and a set per pair were
   * three string-keyed lookups through the state map, and a conversion after each snapshot).
   * Only `add` writes `edges`, so a held list is always the stored one.
   */
  const held: (ItemEdges | undefined)[] = [];
  const heldIds: number[] = [];
  /** Flushes so far: `massSet[x] === flushes` marks an item's mass set since the last one. */
  let flushes = 1;
  const flush = () => {
    for (const x of heldIds) held[x] = undefined;
    heldIds.length = 0;
    flushes++;
  };
  /**
   * Each item's total weight by item number, as the object `mass` holds (null: none): read from
   * `mass` once, then changed in place here and set there once per flush, as held lists are (a
   * string-keyed lookup through the state map per event, and one per neighbour scored, read and
   * set the same few objects). Only `add` writes `mass`, so a kept value is always the stored one.
   */
  const massRef: (Edge | null | undefined)[] = [];
  const massSet: number[] = [];
  const massOf = (x: number): Edge | undefined => {
    let v = massRef[x];
    if (v === undefined) massRef[x] = v = mass.get(names[x]!) ?? null;
    return v ?? undefined;
  };
  /** The list of item number x (named `name`), to change and then set. */
  const changing = (x: number, name: string): ItemEdges => {
    let m = held[x];
    if (m === undefined) {
      // Without flushes (a direct user): a bound on what is held.
      if (heldIds.length >= MAX_HELD) flush();
      m = edgesOf(name) ?? new ItemEdges(ids);
      held[x] = m;
      heldIds.push(x);
      edges.set(name, m); // changed in place until the flush
    }
    return m;
  };

  /** A weight s as of ts, at `now`. */
  const atOf = (s: number, ts: number, now: number) => s * decay(Math.max(0, now - ts), halfLife);
  // decay() inlined on the per-pair path (the same expression, so the same bits).
  const finite = Number.isFinite(halfLife);
  /** Adds w at time ts to a decayed sum, in place (the later time becomes its reference). */
  const bump = (x: Edge, w: number, ts: number) => {
    if (ts >= x[1]) {
      x[0] = x[0] * (finite ? Math.pow(2, -(ts - x[1]) / halfLife) : 1) + w;
      x[1] = ts;
    } else x[0] += w * (finite ? Math.pow(2, -(x[1] - ts) / halfLife) : 1);
  };

  /**
   * Adds w at ts to the edge of `m` (a's neighbours, changed in place) to b (its number): as
   * `bump` on the entry's weight and time.
   */
  const link = (m: ItemEdges, b: number, w: number, ts: number) => {
    const x = m.find(b);
    if (x >= 0) {
      // Entry x's weight and time: d[3x + 1], d[3x + 2] (item-edges.ts).
      const d = m.d;
      const at = 3 * x + 1;
      const t = d[at + 1]!;
      if (ts >= t) {
        d[at] = d[at]! * (finite ? Math.pow(2, -(ts - t) / halfLife) : 1) + w;
        d[at + 1] = ts;
      } else d[at] = d[at]! + w * (finite ? Math.pow(2, -(t - ts) / halfLife) : 1);
    } else {
      m.push(b, w, ts);
      if (m.size >= 3 * k) prune(m, ts);
    }
  };

  /**
   * Keeps the k strongest neighbours (ties by id), so a list never holds 3k or more: the k-th
   * best score from a typed-array sort (no comparator; a comparator sort of the entries was ~10%
   * of the covisit stage), then every entry above it and the smallest ids among those equal to it.
   */
  const prune = (m: ItemEdges, now: number) => {
    const n = m.size;
    const scores = new Float64Array(n);
    for (let x = 0; x < n; x++) scores[x] = atOf(m.sOf(x), m.tsOf(x), now);
    // The k-th best by selection (nthBest: the same value as a sort gives, in linear time).
    const kth = nthBest(scores.slice(), k);
    let above = 0;
    const ties: string[] = [];
    for (let x = 0; x < n; x++) {
      const sc = scores[x]!;
      if (sc > kth) above++;
      else if (sc === kth) ties.push(names[m.keyOf(x)]!);
    }
    const kept = new Set(ties.sort().slice(0, k - above));
    const keep = new Uint8Array(n);
    for (let x = 0; x < n; x++) {
      const sc = scores[x]!;
      keep[x] = sc > kth || (sc === kth && kept.has(names[m.keyOf(x)]!)) ? 1 : 0;
    }
    m.retain(keep);
  };

  /** Moves on with every add that changes edges or masses (readers key their caches on it). */
  let version = 0;
  const part: CovisitPart = {
    ids,
    edgesOf,
    massOf: (x) => massOf(x),
    version: () => version,
    get items() {
      return edges.size;
    },
  };
  const reader = createCovisitReader(readOptions(opts), [part]);

  return {
    get items() {
      return edges.size;
    },
    flush,
    add(e) {
      const w = opts.preset.weight(e);
      if (w <= 0) return;
      version++;
      // The item's number, and its id as the one string object `ids` holds for it.
      const me = ids.idOf(e.i);
      const item = names[me]!;
      const own = massOf(me);
      if (own) bump(own, w, e.ts);
      else massRef[me] = [w, e.ts];
      if (massSet[me] !== flushes) {
        massSet[me] = flushes;
        mass.set(item, massRef[me]!);
      }
      const list = recentItems(recent.get(e.u), ids, recentCap + 1);
      const sess = e.sess ?? null;
      const { nums, ts: times, w: weights, sess: sessions } = list;
      // The item's own neighbours, once per event.
      let mine: ItemEdges | undefined;
      // Where the item itself is in the list (it is there at most once).
      let at0 = -1;
      // Each recent item pairs once per event (its latest touch), not once per earlier touch.
      for (let x = 0; x < list.size; x++) {
        const ox = nums[x]!;
        if (ox === me) {
          at0 = x;
          continue;
        }
        const rs = sessions[x]!;
        const together = (rs !== null && rs === sess) || Math.abs(e.ts - times[x]!) <= windowMs;
        if (!together) continue;
        const pw = Math.max(w, weights[x]!);
        mine ??= changing(me, item);
        link(mine, ox, pw, e.ts);
        link(changing(ox, names[ox]!), me, pw, e.ts);
      }
      if (at0 >= 0) list.remove(at0);
      list.push(me, e.ts, w, sess);
      while (list.size > recentCap) list.remove(0);
      recent.set(e.u, list);
    },
    similar: reader.similar,
    candidates: reader.candidates,
    part,
  };
}
