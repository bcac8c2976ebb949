import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { Level } from "level";

/**
 * Per-key state of one stage instance, held in memory and persisted by snapshots.
 * Hot state stays in maps (LevelDB gets cost ~120 µs each, see NATS-NOTES.md); a snapshot writes
 * only the keys changed since the previous one, with the stage's metadata, in one atomic batch.
 */
export interface KeyedMap<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  /** Marks the key dirty. Values are treated as immutable once set: set a new object to change one. */
  set(key: string, value: V): void;
  delete(key: string): void;
  readonly size: number;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
}

/** The live state of a stage instance: named maps plus metadata (input positions, watermark). */
export interface StageState {
  map<V>(name: string): KeyedMap<V>;
  /** Stage metadata, written with every snapshot (JSON-serialisable). */
  meta: Record<string, unknown>;
  /** Number of keys changed since the last snapshot. */
  dirtyCount(): number;
  /** Number of keys held, over all maps (state is bounded by open windows and horizons). */
  keyCount(): number;
}

export interface StageStateInternal extends StageState {
  takeDirty(): { puts: [string, unknown][]; dels: string[] };
  loadEntry(fullKey: string, value: unknown): void;
}

const SEP = "\u0000";

export function createStageState(): StageStateInternal {
  const maps = new Map<string, Map<string, unknown>>();
  // Dirty keys as "<map>\0<key>"; values read from the live map at snapshot time.
  const dirty = new Set<string>();
  const mapOf = (name: string) => {
    let m = maps.get(name);
    if (!m) {
      m = new Map();
      maps.set(name, m);
    }
    return m;
  };
  const state: StageStateInternal = {
    meta: {},
    map<V>(name: string): KeyedMap<V> {
      const m = mapOf(name) as Map<string, V>;
      return {
        get: (k) => m.get(k),
        has: (k) => m.has(k),
        set: (k, v) => {
          m.set(k, v);
          dirty.add(name + SEP + k);
        },
        delete: (k) => {
          if (m.delete(k)) dirty.add(name + SEP + k);
        },
        get size() {
          return m.size;
        },
        keys: () => m.keys(),
        entries: () => m.entries(),
      };
    },
    dirtyCount: () => dirty.size,
    keyCount: () => {
      let n = 0;
      for (const m of maps.values()) n += m.size;
      return n;
    },
    takeDirty() {
      const puts: [string, unknown][] = [];
      const dels: string[] = [];
      for (const full of dirty) {
        const at = full.indexOf(SEP);
        const m = maps.get(full.slice(0, at));
        const k = full.slice(at + 1);
        if (m?.has(k)) puts.push([full, m.get(k)]);
        else dels.push(full);
      }
      dirty.clear();
      return { puts, dels };
    },
    loadEntry(full, value) {
      const at = full.indexOf(SEP);
      mapOf(full.slice(0, at)).set(full.slice(at + 1), value);
    },
  };
  return state;
}

/** A LevelDB database holding the snapshots of every stage instance of one process. */
export interface StateDb {
  /** The snapshot store of one stage instance (a sublevel "<stage>/<partition>"). */
  instance(stage: string, partition: number): SnapshotStore;
  /**
   * Compacts the whole store: deleted keys (expired windows, horizons, forgotten event ids)
   * leave tombstones until LevelDB compacts their range; this makes the disk follow the state.
   */
  compact(): Promise<void>;
  /** Bytes on disk under the store's directory. */
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

export interface SnapshotStore {
  /** Loads the last snapshot into a fresh state (empty if none). */
  load(): Promise<StageStateInternal>;
  /** Writes the dirty keys and the metadata in one atomic batch. Returns the number of keys written. */
  write(state: StageStateInternal): Promise<number>;
  /** Removes the instance's snapshot entirely. */
  clear(): Promise<void>;
  /** The snapshot as raw entries, for the archive (state/archive.ts). */
  exportRaw(): Promise<{ meta: Record<string, unknown>; entries: [string, unknown][] }>;
  /** Replaces the instance's snapshot with raw entries from the archive, in one batch. */
  importRaw(s: { meta: Record<string, unknown>; entries: [string, unknown][] }): Promise<void>;
}

const META_KEY = "\u0001meta";

/**
 * Fault injection for the chaos test: with RECO_TEST_KILL_IN_SNAPSHOT_WRITE=N the process
 * SIGKILLs itself while its N-th snapshot batch is being written. Never set in production.
 */
let snapshotWrites = 0;
const killAt = Number(process.env.RECO_TEST_KILL_IN_SNAPSHOT_WRITE ?? 0);
function faultInSnapshotWrite(): void {
  if (killAt > 0 && ++snapshotWrites === killAt) process.kill(process.pid, "SIGKILL");
}

export async function openStateDb(path: string): Promise<StateDb> {
  const db = new Level<string, unknown>(path, { valueEncoding: "json" });
  await db.open();
  return {
    instance(stage, partition) {
      const sub = db.sublevel<string, unknown>(`${stage}/${partition}`, { valueEncoding: "json" });
      return {
        async load() {
          const state = createStageState();
          // nextv reads in chunks: one call per key (for await) was most of the start-up time.
          const it = sub.iterator();
          try {
            for (;;) {
              const chunk = await it.nextv(1000);
              if (chunk.length === 0) break;
              for (const [k, v] of chunk) {
                if (k === META_KEY) state.meta = v as Record<string, unknown>;
                else state.loadEntry(k, v);
              }
            }
          } finally {
            await it.close();
          }
          return state;
        },
        async write(state) {
          const { puts, dels } = state.takeDirty();
          const ops: Array<
            { type: "put"; key: string; value: unknown } | { type: "del"; key: string }
          > = [];
          for (const [k, v] of puts) ops.push({ type: "put", key: k, value: v });
          for (const k of dels) ops.push({ type: "del", key: k });
          ops.push({ type: "put", key: META_KEY, value: state.meta });
          const written = sub.batch(ops);
          faultInSnapshotWrite();
          await written;
          return puts.length + dels.length;
        },
        async clear() {
          await sub.clear();
        },
        async exportRaw() {
          let meta: Record<string, unknown> = {};
          const entries: [string, unknown][] = [];
          for await (const [k, v] of sub.iterator()) {
            if (k === META_KEY) meta = v as Record<string, unknown>;
            else entries.push([k, v]);
          }
          return { meta, entries };
        },
        async importRaw(snap) {
          await sub.clear();
          const ops: { type: "put"; key: string; value: unknown }[] = snap.entries.map(
            ([key, value]) => ({ type: "put", key, value }),
          );
          ops.push({ type: "put", key: META_KEY, value: snap.meta });
          await sub.batch(ops);
        },
      };
    },
    async compact() {
      // classic-level (what `level` is on Node) has compactRange; the abstract type does not.
      const c = db as unknown as { compactRange(a: string, b: string): Promise<void> };
      await c.compactRange("\u0000", "\uffff");
    },
    sizeBytes: () => dirSize(path),
    close: () => db.close(),
  };
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirSize(p);
    else total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
