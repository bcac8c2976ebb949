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

/**
 * The user side of co-visitation: each user's recent items, and for an event the items it pairs
 * with (`together`). It holds per-user data only, so it runs in the event's user partition; the
 * pairs it finds go to the item side of each item's own partition (createCovisitItems).
 */
export interface CovisitUsers {
  /**
   * The event's weight and the recent items it pairs with (names and pair weights, in the
   * recent list's order), after which the event is one of the user's recent items. Undefined:
   * the event weighs nothing (no pairs, no mass, the list unchanged).
   */
  together(e: SourceEvent): { w: number; items: string[]; weights: number[] } | undefined;
}

export function createCovisitUsers(
  opts: CovisitOptions,
  stores: { recent: CovisitStores["recent"]; ids?: ItemIds },
): CovisitUsers {
  const windowMs = opts.windowMs ?? 3_600_000;
  const recentCap = opts.recentPerUser ?? 30;
  const { recent } = stores;
  const ids = stores.ids ?? createItemIds();
  const names = ids.names;
  return {
    together(e) {
      const w = opts.preset.weight(e);
      if (w <= 0) return undefined;
      const me = ids.idOf(e.i);
      const list = recentItems(recent.get(e.u), ids, recentCap + 1);
      const sess = e.sess ?? null;
      const { nums, ts: times, w: weights, sess: sessions } = list;
      const items: string[] = [];
      const pws: number[] = [];
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
        items.push(names[ox]!);
        pws.push(Math.max(w, weights[x]!));
      }
      if (at0 >= 0) list.remove(at0);
      list.push(me, e.ts, w, sess);
      while (list.size > recentCap) list.remove(0);
      recent.set(e.u, list);
      return { w, items, weights: pws };
    },
  };
}

/**
 * The item side of co-visitation: neighbour lists and total weights per item. Each pair (a, b)
 * of an event on a adds to a's list (`own`, in a's partition, with a's mass) and to b's
 * (`back`, in b's partition). A list is changed by its own item's events (all their pairs, in
 * the recent list's order) and by one pair of each event on another item: fed the events in
 * EVENTS order, each list sees its changes in the order one instance fed every event would
 * make them, so it holds the same bits.
 */
export interface CovisitItems extends SimilarItemsReads {
  /**
   * An event of weight w on item a at ts, paired with `items` (pair weights `weights`): a's mass
   * and its links to each of them; then the links back to a from those `back` holds (the
   * partition's own items; all of them by default).
   */
  own(
    a: string,
    ts: number,
    w: number,
    items: readonly string[],
    weights: readonly number[],
    back?: (b: string) => boolean,
  ): void;
  /** The links back to a (an event at ts on another partition's item) from each of `items`. */
  back(a: string, ts: number, items: readonly string[], weights: readonly number[]): void;
  flush(): void;
  readonly part: CovisitPart;
}

export function createCovisitItems(
  opts: CovisitOptions,
  stores: Pick<CovisitStores, "edges" | "mass" | "ids">,
): CovisitItems {
  const halfLife = opts.halfLifeMs ?? 7 * 86_400_000;
  const k = opts.k ?? 50;
  const { edges, mass } = stores;
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

  /** Moves on with every change of edges or masses (readers key their caches on it). */
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
  /** Adds w at ts to the edge of b's list to item number a. */
  const linkBack = (a: number, ts: number, b: string, w: number) => {
    const ob = ids.idOf(b);
    link(changing(ob, names[ob]!), a, w, ts);
  };

  return {
    get items() {
      return edges.size;
    },
    flush,
    own(a, ts, w, items, weights, back) {
      version++;
      // The item's number, and its id as the one string object `ids` holds for it.
      const me = ids.idOf(a);
      const item = names[me]!;
      const mine = massOf(me);
      if (mine) bump(mine, w, ts);
      else massRef[me] = [w, ts];
      if (massSet[me] !== flushes) {
        massSet[me] = flushes;
        mass.set(item, massRef[me]!);
      }
      if (items.length === 0) return;
      const list = changing(me, item);
      for (let x = 0; x < items.length; x++) link(list, ids.idOf(items[x]!), weights[x]!, ts);
      for (let x = 0; x < items.length; x++)
        if (back === undefined || back(items[x]!)) linkBack(me, ts, items[x]!, weights[x]!);
    },
    back(a, ts, items, weights) {
      if (items.length === 0) return;
      version++;
      const me = ids.idOf(a);
      for (let x = 0; x < items.length; x++) linkBack(me, ts, items[x]!, weights[x]!);
    },
    similar: reader.similar,
    candidates: reader.candidates,
    part,
  };
}

/**
 * Both sides in one (a single instance, as `reco eval`'s in-memory sources and the unit tests
 * use it): each event's pairs go straight to the item side.
 */
export function createCovisit(
  opts: CovisitOptions,
  stores: CovisitStores = memCovisitStores(),
): SimilarItemsSource {
  const ids = stores.ids ?? createItemIds();
  const users = createCovisitUsers(opts, { recent: stores.recent, ids });
  const items = createCovisitItems(opts, { edges: stores.edges, mass: stores.mass, ids });
  return {
    get items() {
      return items.items;
    },
    flush: items.flush,
    add(e) {
      const t = users.together(e);
      if (t) items.own(e.i, e.ts, t.w, t.items, t.weights);
    },
    similar: items.similar,
    candidates: items.candidates,
    part: items.part,
  };
}
