import type { StateMap, StateMaps, ValueCodec } from "../../runtime/index.js";

/**
 * The change stream of the blend's source stages (history, covisit, collaborative), for a
 * replica of them in another process (actors/serving/blend-replica.ts: the serving process of a split
 * `reco start`). Kafka Streams' changelog, at the level of a stage's state maps: a stage's state
 * is its only truth (runtime/stage.ts StateMaps), so a replica holding the same keys with the
 * same values and reading them with the same source code gives the same answers.
 *
 * Each run of a stage instance (a start, a restart from a snapshot) sends every key it holds
 * first (a dump, `reset` on its first chunk, `complete` on its last: the replica builds the
 * instance aside and swaps it in whole, so it serves the previous run's data until then), then
 * the keys set or deleted since they were last sent. A run that starts from a snapshot the
 * replica read itself from the state store (blend-replica.ts adoptBase: the serving process reads
 * the sources' snapshots before it spawns the ingest process) sends no dump: its first chunk
 * names that read (`base`), and only the keys changed since follow. Values go in their stored form (a codec's
 * bytes, a text map's JSON text, a plain map's value): what a snapshot writes, read at the time
 * a chunk is taken, between the stage's batches. Sending is pulled (`take`), so a busy or slow
 * consumer holds back nothing but a set of keys per map.
 */

/** One map's changes in a chunk: [key, stored value] pairs and deleted keys. */
export interface MapChanges {
  map: string;
  puts: [string, unknown][];
  dels: string[];
}

/** A chunk of one stage instance's changes. */
export interface ChangeChunk {
  /** The instance ("history/2", "covisit/0", "collaborative/0"). */
  instance: string;
  /** The run of the instance these changes belong to (unique across processes). */
  run: string;
  /** First chunk of the run's dump: the replica starts the instance afresh (aside). */
  reset?: true;
  /** Last chunk of the dump: the instance built aside replaces the one served. */
  complete?: true;
  /**
   * The run starts from the snapshot the replica read as `base` (blend-replica.ts adoptBase),
   * instead of a dump: this chunk is the run's first, with `complete`; its changes follow.
   */
  base?: string;
  /** The map options of the instance (sent with the dump): how its stored values read. */
  forms?: Record<string, "text" | "codec" | "plain">;
  maps: MapChanges[];
}

/** Maps a replica never reads (the sources' write-side bookkeeping): not sent. */
export const UNREPLICATED_MAPS: ReadonlySet<string> = new Set([
  "recent", // covisit before: each user's last items, to pair new ones with
  "covisit-recent", // history: the same, where co-visitation's user side runs now
  "marked", // collaborative: the matrix at a training point, for a training after a restart
  "xmarked",
  "versions", // collaborative: model version history (the console's, not the blend's)
  "points",
  "user-marks", // collaborative per partition: the rows at training points
  "user-xmarks",
  "part-points", // ... its crossings of them, and the trainer's bookkeeping
  "trainer",
  "user-first", // ... where users and items were first added (the gathered matrix's order)
  "user-xfirst",
  "crossings", // the collaborative trainer's copies of the partitions' crossings
]);

/**
 * The collaborative trainer's copies of the partitions' rows (collaborative-trainer.ts copyMaps:
 * `p<partition>-…`): trained on, never read by an answer.
 */
export const COPY_MAP = /^p\d+-/;

/** Whether a replica leaves a map out. */
export const unreplicated = (name: string): boolean =>
  UNREPLICATED_MAPS.has(name) || COPY_MAP.test(name) || SCORER_MAP.test(name);

/**
 * The prequential scorer's maps, where it runs inside a history stage (history-stage.ts): its
 * tallies and clock ("preq", "preqCover", "preqCatalogue", "preq-clock"), and those an older
 * covisit stage kept of it (with its design driver's "design-…"). No answer reads them.
 */
const SCORER_MAP = /^(preq|design-)/;

interface Tracked {
  name: string;
  live: StateMap<unknown>;
  stored: (v: unknown) => unknown;
  form: "text" | "codec" | "plain";
  changed: Set<string>;
}

export interface ChangeTracker {
  /** The stage's state with every set and delete recorded (what the stage is created with). */
  readonly maps: StateMaps;
  /**
   * Up to `maxKeys` changes, and no more once about `maxBytes` of values are in it (the dump
   * first), or undefined when there is none.
   */
  take(maxKeys: number, maxBytes?: number): ChangeChunk | undefined;
  /** Whether the dump of this run is still being sent. */
  readonly dumping: boolean;
  /** Whether anything is left to send (the dump, or changed keys). */
  pending(): boolean;
}

/** About how many bytes a stored value is (a chunk's budget; plain values count a little). */
const sizeOf = (v: unknown): number =>
  typeof v === "string" ? v.length : v instanceof Uint8Array ? v.byteLength : 32;

/** A stored form of a value: as the state store persists it (runtime/stage.ts). */
const storedOf = (
  options: { text?: boolean; codec?: ValueCodec<unknown> } | undefined,
): Pick<Tracked, "stored" | "form"> =>
  options?.codec
    ? {
        form: "codec",
        stored: (v) =>
          v instanceof Uint8Array || typeof v === "string" ? v : options.codec!.encode(v),
      }
    : options?.text
      ? { form: "text", stored: (v) => (typeof v === "string" ? v : JSON.stringify(v)) }
      : { form: "plain", stored: (v) => v };

export function createChangeTracker(
  instance: string,
  run: string,
  state: StateMaps,
  /** The replica's read of the snapshot this run starts from (no dump then), if it has one. */
  base?: string,
): ChangeTracker {
  const tracked: Tracked[] = [];
  /**
   * The dump's place: map index, that map's keys (taken when the dump reaches it: a state map's
   * iterator is not meant to outlive the batches between two takes) and the next one to send;
   * undefined once sent (or with a base: none).
   */
  let dump: { map: number; keys: string[] | undefined; at: number } | undefined =
    base === undefined ? { map: 0, keys: undefined, at: 0 } : undefined;
  /** The base chunk, until sent. */
  let baseNote = base;
  let resetSent = false;
  const maps: StateMaps = {
    map<V>(name: string, options?: { text?: boolean; codec?: ValueCodec<V> }) {
      const live = state.map<V>(name, options);
      if (unreplicated(name)) return live;
      const t: Tracked = {
        name,
        live: live as StateMap<unknown>,
        changed: new Set(),
        ...storedOf(options as { text?: boolean; codec?: ValueCodec<unknown> }),
      };
      tracked.push(t);
      const changed = t.changed;
      const wrapped: StateMap<V> = {
        get: (k) => live.get(k),
        has: (k) => live.has(k),
        set(k, v) {
          changed.add(k);
          live.set(k, v);
        },
        delete(k) {
          changed.add(k);
          live.delete(k);
        },
        get size() {
          return live.size;
        },
        keys: () => live.keys(),
        entries: () => live.entries(),
        ...(live.peekText ? { peekText: (k: string) => live.peekText!(k) } : {}),
      };
      return wrapped;
    },
    value: (name) => state.value(name),
  };
  /** The stored value of a key for the dump: a text map's text without parsing it. */
  const storedNow = (t: Tracked, k: string) => {
    if (t.form === "text" && t.live.peekText) {
      const text = t.live.peekText(k);
      if (text !== undefined) return text;
    }
    // A codec map's value peeked, not read: a read keeps it decoded until the next snapshots,
    // every key of the map at once during a dump.
    return t.stored(t.form === "codec" && t.live.peek ? t.live.peek(k) : t.live.get(k));
  };
  const takeDump = (maxKeys: number, maxBytes: number): ChangeChunk => {
    const chunk: ChangeChunk = { instance, run, maps: [] };
    if (!resetSent) {
      resetSent = true;
      chunk.reset = true;
      chunk.forms = Object.fromEntries(tracked.map((t) => [t.name, t.form]));
    }
    let n = 0;
    let bytes = 0;
    while (dump && n < maxKeys && bytes < maxBytes) {
      const t = tracked[dump.map];
      if (!t) {
        dump = undefined;
        chunk.complete = true;
        break;
      }
      const keys = (dump.keys ??= [...t.live.keys()]);
      const puts: [string, unknown][] = [];
      while (n < maxKeys && bytes < maxBytes) {
        if (dump.at >= keys.length) {
          dump = { map: dump.map + 1, keys: undefined, at: 0 };
          break;
        }
        const k = keys[dump.at++]!;
        // Deleted since the keys were taken: the deletion is a change, sent after the dump.
        if (!t.live.has(k)) continue;
        // Sent now with its current value: no need to send it again as a change.
        t.changed.delete(k);
        const v = storedNow(t, k);
        puts.push([k, v]);
        bytes += k.length + sizeOf(v);
        n++;
      }
      if (puts.length > 0) chunk.maps.push({ map: t.name, puts, dels: [] });
    }
    return chunk;
  };
  return {
    maps,
    get dumping() {
      return dump !== undefined || baseNote !== undefined;
    },
    pending: () =>
      dump !== undefined || baseNote !== undefined || tracked.some((t) => t.changed.size > 0),
    take(maxKeys, maxBytes = Infinity) {
      if (baseNote !== undefined) {
        const chunk: ChangeChunk = {
          instance,
          run,
          base: baseNote,
          complete: true,
          forms: Object.fromEntries(tracked.map((t) => [t.name, t.form])),
          maps: [],
        };
        baseNote = undefined;
        return chunk;
      }
      if (dump) return takeDump(maxKeys, maxBytes);
      const chunk: ChangeChunk = { instance, run, maps: [] };
      let n = 0;
      let bytes = 0;
      for (const t of tracked) {
        if (n >= maxKeys || bytes >= maxBytes) break;
        if (t.changed.size === 0) continue;
        const puts: [string, unknown][] = [];
        const dels: string[] = [];
        for (const k of t.changed) {
          t.changed.delete(k);
          if (t.live.has(k)) {
            const v = t.stored(t.live.get(k));
            puts.push([k, v]);
            bytes += sizeOf(v);
          } else dels.push(k);
          bytes += k.length;
          if (++n >= maxKeys || bytes >= maxBytes) break;
        }
        chunk.maps.push({ map: t.name, puts, dels });
      }
      return n > 0 ? chunk : undefined;
    },
  };
}

/** Every source instance's tracker, current run only: what the ingest process sends from. */
export interface ChangeFeed {
  /**
   * The next chunk of any instance (round robin; only of those `of` allows), or undefined when
   * nothing changed.
   */
  take(
    maxKeys: number,
    maxBytes?: number,
    of?: (instance: string) => boolean,
  ): ChangeChunk | undefined;
  /** Whether every current run has sent its dump. */
  readonly dumped: boolean;
  /** The instances with something left to send, and whether each is still dumping. */
  pending(): { instance: string; dumping: boolean }[];
}

export function createChangeFeed(
  /**
   * The replica's reads of the snapshots on disk, by instance (the serving process read them
   * before it spawned this process): each instance's first run here starts from that snapshot,
   * so it sends no dump. A later run (a restart from a newer snapshot) dumps.
   */
  bases: Readonly<Record<string, string>> = {},
): ChangeFeed & {
  /** Records a new run of `instance` (replacing its previous run's tracker). */
  track(instance: string, state: StateMaps): StateMaps;
} {
  const trackers = new Map<string, ChangeTracker>();
  const unused = new Map(Object.entries(bases));
  let runs = 0;
  // Unique across the ingest processes one serving process sees (a restarted child counts anew).
  const prefix = `${process.pid}.${Date.now().toString(36)}`;
  let next = 0;
  return {
    track(instance, state) {
      const base = unused.get(instance);
      unused.delete(instance);
      const t = createChangeTracker(instance, `${prefix}.${++runs}`, state, base);
      trackers.set(instance, t);
      return t.maps;
    },
    get dumped() {
      for (const t of trackers.values()) if (t.dumping) return false;
      return true;
    },
    pending() {
      const out: { instance: string; dumping: boolean }[] = [];
      for (const [instance, t] of trackers)
        if (t.pending()) out.push({ instance, dumping: t.dumping });
      return out;
    },
    take(maxKeys, maxBytes, of) {
      const all = [...trackers.entries()];
      for (let x = 0; x < all.length; x++) {
        const [instance, t] = all[(next + x) % all.length]!;
        if (of && !of(instance)) continue;
        const chunk = t.take(maxKeys, maxBytes);
        if (chunk) {
          next = (next + x + 1) % all.length;
          return chunk;
        }
      }
      return undefined;
    },
  };
}
