import type { KeyedMap } from "../state/index.js";

/**
 * The dedupe memory of parse: event ids seen, with their event time, bounded in time and size.
 *
 * Which ids are remembered must be a function of the input alone, never of when snapshots were
 * taken, or a restart would accept a duplicate that a run without the restart drops (or the
 * reverse). A JavaScript Map iterates in insertion order, but a map reloaded from LevelDB comes
 * back in key order, so "expire from the front of the map" meant one thing live and another
 * after a reload. Here the order of forgetting is explicit and total: oldest event time first,
 * ties by id (plain string order). It is kept in a binary min-heap over (time, id) beside the
 * persisted map; the heap is rebuilt from the map's values on load in O(n), and because the
 * order is total the ids leave in the same sequence whatever the heap's internal layout.
 *
 * The persisted form: map key = event id, value = the time it is remembered from (epoch ms):
 * the later of its event time and the progress when it arrived (parse passes that).
 */
export interface SeenIds {
  has(id: string): boolean;
  /**
   * Remembers `id` unless it is held already (then returns false and changes nothing); if more
   * than `maxIds` are held, the oldest are forgotten (possibly `id`).
   */
  add(id: string, ts: number): boolean;
  /** Forgets every id whose event time is before `horizon`. */
  expireBefore(horizon: number): void;
  readonly size: number;
}

export function createSeenIds(map: KeyedMap<number>, maxIds: number): SeenIds {
  // Parallel arrays: the id strings are the map's own keys (shared, not copied).
  const times: number[] = [];
  const ids: string[] = [];

  const less = (a: number, b: number): boolean =>
    times[a]! < times[b]! || (times[a] === times[b] && ids[a]! < ids[b]!);
  const swap = (a: number, b: number): void => {
    const t = times[a]!;
    times[a] = times[b]!;
    times[b] = t;
    const i = ids[a]!;
    ids[a] = ids[b]!;
    ids[b] = i;
  };
  const up = (k: number): void => {
    while (k > 0) {
      const parent = (k - 1) >> 1;
      if (!less(k, parent)) return;
      swap(k, parent);
      k = parent;
    }
  };
  const down = (k: number): void => {
    const n = times.length;
    for (;;) {
      const l = 2 * k + 1;
      if (l >= n) return;
      const r = l + 1;
      const c = r < n && less(r, l) ? r : l;
      if (!less(c, k)) return;
      swap(c, k);
      k = c;
    }
  };
  const popOldest = (): void => {
    const id = ids[0]!;
    const last = times.length - 1;
    swap(0, last);
    times.pop();
    ids.pop();
    if (last > 0) down(0);
    map.delete(id);
  };

  for (const [id, ts] of map.entries()) {
    ids.push(id);
    // A value that is not a time (a damaged snapshot) sorts first: it is forgotten first.
    times.push(typeof ts === "number" && !Number.isNaN(ts) ? ts : -Infinity);
  }
  for (let k = (times.length >> 1) - 1; k >= 0; k--) down(k);
  while (times.length > maxIds) popOldest();

  return {
    has: (id) => map.has(id),
    add(id, ts) {
      if (map.has(id)) return false;
      map.set(id, ts);
      times.push(ts);
      ids.push(id);
      up(times.length - 1);
      while (times.length > maxIds) popOldest();
      return true;
    },
    expireBefore(horizon) {
      while (times.length > 0 && times[0]! < horizon) popOldest();
    },
    get size() {
      return times.length;
    },
  };
}
