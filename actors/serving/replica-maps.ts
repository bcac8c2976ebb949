import type { StageStateInternal } from "../../state/index.js";
import type { StateMap, StateMaps, ValueCodec } from "../../runtime/index.js";
import type { ItemIds } from "../sources/index.js";

/**
 * The replica's state maps: each map of a source instance is a layer of the stored values
 * received (snapshot deltas, then changes), over the snapshot read, decoded on demand and kept
 * to a bound.
 */

/** A deleted key of a snapshot read (adoptBase), in a layer's values. */
export const DELETED: unique symbol = Symbol("deleted");
/** The stored value a decoded value came from, for a value of the snapshot read itself. */
export const FROM_BASE: unique symbol = Symbol("from-base");

/** One map of an instance: the stored values received, over the snapshot read, if any. */
export interface Layer {
  /** Stored values as received; DELETED for a key of `base` deleted since. */
  readonly values: Map<string, unknown>;
  /** The map in the snapshot read (its keys; values are read through the view's options). */
  readonly base: StateMap<unknown> | undefined;
  /** Keys of `values` not in `base`, and keys of `base` deleted. */
  added: number;
  removed: number;
}

/** One run of a stage instance as received: its maps of stored values. */
export interface Instance {
  /** Undefined for a snapshot read whose run has not said so yet (adoptBase). */
  run: string | undefined;
  readonly maps: Map<string, Layer>;
  /** The snapshot read from the state store that the run starts from (adoptBase). */
  readonly base?: StageStateInternal;
  /** The read's token. */
  readonly token?: string;
  /** Changes applied to it (a view built at another version is stale). */
  version: number;
  /**
   * The state maps views read it through, by map name, with their decoded values: kept for the
   * run, so a view built again (covisit's, after its data changed) decodes only what changed.
   */
  readonly views: Map<string, StateMap<unknown>>;
  /** Covisit's item numbering, kept with the decoded neighbour lists that use it. */
  ids?: ItemIds;
}

/** Decoded values kept per map (a history read decodes its user's JSON once per change). */
export const DECODED_MAX = 20_000;
/**
 * Covisit's view is built again when its data changed, at most this often: building it is cheap,
 * but its trending and popular lists are then sorted again from every item's count at the first
 * read (the stage keeps them in order event by event, which a replica given counts cannot).
 */
export const COVISIT_REBUILD_MS = 100;

export const noop = () => undefined;
/** Users whose last change is remembered at most (a kept answer is at most MEMO_ANSWERS). */
export const USERS_TRACKED = 200_000;
/** Maps keyed by user whose values only that user's answer reads (history, collaborative rows). */
export const USER_MAPS: ReadonlySet<string> = new Set([
  "users",
  "rows",
  "xrows",
  "user-rows",
  "user-xrows",
]);
/** Maps that hold only a stage's clock (covisit's progress and records fed). */
export const CLOCK_MAPS: ReadonlySet<string> = new Set(["clock", "item-clock"]);

export const layerOf = (inst: Instance, name: string): Layer => {
  let l = inst.maps.get(name);
  if (!l) {
    l = { values: new Map(), base: inst.base?.map(name), added: 0, removed: 0 };
    inst.maps.set(name, l);
  }
  return l;
};
export const sizeOfLayer = (l: Layer) =>
  l.base ? l.base.size + l.added - l.removed : l.values.size;

/**
 * A state map over a replica instance's stored values, decoded as the stage's options say: the
 * values received, else the snapshot read's (peeked: decoded without the snapshot's state keeping
 * them; kept here as received values are).
 */
export function replicaMap<V>(
  layer: Layer,
  baseRead: StateMap<V> | undefined,
  options: { text?: boolean; codec?: ValueCodec<V> } | undefined,
  counts: { decoded: number },
): StateMap<V> {
  const { values, base } = layer;
  const decode: ((stored: unknown) => V) | undefined = options?.codec
    ? (v) => options.codec!.decode(v)
    : options?.text
      ? (v) => (typeof v === "string" ? (JSON.parse(v) as V) : (v as V))
      : undefined;
  const decoded = new Map<string, { stored: unknown; value: V }>();
  const peekBase = baseRead && (baseRead.peek ?? baseRead.get);
  /** A key of the snapshot read: decoded by its map, kept as a received value's decoding is. */
  const fromBase = (k: string): V | undefined => {
    if (!peekBase) return undefined;
    if (!decode) return peekBase(k);
    const hit = decoded.get(k);
    if (hit && hit.stored === FROM_BASE) return hit.value;
    const value = peekBase(k);
    if (value === undefined) return undefined;
    counts.decoded++;
    if (decoded.size >= DECODED_MAX) decoded.clear();
    decoded.set(k, { stored: FROM_BASE, value });
    return value;
  };
  const get = (k: string): V | undefined => {
    const stored = values.get(k);
    if (stored === undefined) return fromBase(k);
    if (stored === DELETED) return undefined;
    if (!decode) return stored as V | undefined;
    const hit = decoded.get(k);
    if (hit && hit.stored === stored) return hit.value;
    const value = decode(stored);
    counts.decoded++;
    if (decoded.size >= DECODED_MAX) decoded.clear();
    decoded.set(k, { stored, value });
    return value;
  };
  const refuse = () => {
    throw new Error("a blend replica is read-only");
  };
  const keys = base
    ? function* (): Generator<string> {
        for (const k of base.keys()) if (values.get(k) !== DELETED) yield k;
        for (const [k, v] of values) if (v !== DELETED && !base.has(k)) yield k;
      }
    : () => values.keys();
  return {
    get,
    has: (k) => {
      const v = values.get(k);
      return v === undefined ? (base?.has(k) ?? false) : v !== DELETED;
    },
    set: refuse,
    delete: refuse,
    get size() {
      return sizeOfLayer(layer);
    },
    keys,
    *entries() {
      for (const k of keys()) yield [k, get(k)!] as [string, V];
    },
    ...(options?.text
      ? {
          peekText: (k: string) => {
            const v = values.get(k);
            if (v === DELETED) return undefined;
            return v === undefined ? baseRead?.peekText?.(k) : (v as string);
          },
        }
      : {}),
  };
}

/**
 * The instance's state as a stage reads it. A map is made once per run and name (a stage's code
 * asks for each of its maps with the same options every time it is created).
 */
export const mapsOf = (inst: Instance, counts: { decoded: number }): StateMaps => ({
  map: <V>(name: string, options?: { text?: boolean; codec?: ValueCodec<V> }) => {
    let view = inst.views.get(name);
    if (!view) {
      const layer = layerOf(inst, name);
      view = replicaMap<V>(
        layer,
        layer.base && inst.base!.map<V>(name, options),
        options,
        counts,
      ) as StateMap<unknown>;
      inst.views.set(name, view);
    }
    return view as StateMap<V>;
  },
  value: () => ({ get: noop, set: noop }),
});
