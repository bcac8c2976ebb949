/**
 * Where a candidate source keeps its per-key data: a map of JSON-friendly values. In a stage it
 * is the stage's state map (runtime/stage.ts `StateMap`: the host snapshots the keys set since the
 * last snapshot and loads them at start), in `reco eval` and tests a plain Map. A source mutates
 * a value in place and then calls `set` with it, which marks the key changed: the host serialises
 * values when it captures a snapshot, between batches, so a value need not be copied per event.
 *
 * So a source's state is its own data (per user, per item; bounded where DESIGN §3.7 says so),
 * restored as it was, never rebuilt by feeding events again.
 */
export interface KeyStore<V> {
  get(key: string): V | undefined;
  /**
   * The value without keeping it decoded (a stage's map keeps what `get` decodes until its
   * snapshots find it unchanged): for reads that change nothing. Absent: `get` does.
   */
  peek?(key: string): V | undefined;
  set(key: string, value: V): void;
  delete(key: string): void;
  readonly size: number;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
}

/** A store in memory only (eval, tests). */
export function memStore<V>(): KeyStore<V> {
  return new Map<string, V>();
}

/** An object used as a dictionary (a stored value): ids are any strings, so own keys only. */
export type Dict<V> = Record<string, V>;

/** `d[k]` when `k` is d's own key ("constructor", "toString" are not items). */
export function getOwn<V>(d: Dict<V>, k: string): V | undefined {
  return Object.hasOwn(d, k) ? d[k] : undefined;
}

/** `d[k] = v`, also for "__proto__" (an assignment would set the prototype). */
export function setOwn<V>(d: Dict<V>, k: string, v: V): void {
  if (k === "__proto__")
    Object.defineProperty(d, k, { value: v, enumerable: true, writable: true, configurable: true });
  else d[k] = v;
}
