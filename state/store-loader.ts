/**
 * Loading a snapshot: an instance's entries, in key order, read back into a fresh state (the
 * checkpoint, then the deltas; binary maps indexed, lazily where they can be), with the counts of
 * what is on disk.
 */

import { loadsBusy } from "./cold-index.js";
import { createRawReader, RAW_PREFIX, type Loaded } from "./raw-values.js";
import { readSections } from "./sections.js";
import { createStageState, SEP, type StageStateInternal, type StateDelta } from "./stage-state.js";
import {
  BASE_PREFIX,
  BIN_BASE_PREFIX,
  BIN_DELTA,
  DELTA_PREFIX,
  LOAD_SLICE,
  META_KEY,
  type Chunk,
  type DiskCounts,
} from "./store-layout.js";

/** Reads an instance's snapshot, from its entries in key order, into a state. */
export async function readSnapshot(
  chunks: AsyncIterable<Chunk> | Iterable<Chunk>,
  skip?: ReadonlySet<string>,
): Promise<{ state: StageStateInternal; layout: DiskCounts & { raw: Loaded | undefined } }> {
  const state = createStageState();
  // Loading is CPU work on the event loop that also serves gRPC: give it back every
  // LOAD_SLICE keys. (Applying the deltas of a 125k-user partition in one go held the loop
  // for ~1 s per instance while a restarted process was already answering.)
  let sinceYield = 0;
  const pace = async (keys: number) => {
    loadsBusy();
    sinceYield += keys;
    if (sinceYield < LOAD_SLICE) return;
    sinceYield = 0;
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  const deltas: (Buffer | StateDelta["maps"])[] = [];
  // Binary checkpoint chunks, loaded once all are read: their key counts size the maps'
  // indexes first (see ColdIndex.reserve).
  const binBase: Buffer[] = [];
  const legacy: [string, unknown][] = [];
  /**
   * Maps that a JSON part (checkpoint chunk, delta, one-key entry) holds keys of: their
   * binary parts are loaded in order with those, key by key. Every other map's binary
   * parts are loaded at once, in the order of their indexes' slots (loadBinaryAll).
   */
  const jsonMaps = new Set<string>();
  const binaryMaps = new Set<string>();
  const layout = {
    baseChunks: 0,
    binChunks: 0,
    deltaKeys: [] as string[],
    legacyKeys: [] as string[],
    nextDelta: 1,
    deltaEntries: 0,
    jsonEntries: 0,
    baseKeys: 0,
    jsonBytes: 0,
    baseBytes: 0,
    raw: undefined as Loaded | undefined,
  };
  const raw = createRawReader();
  // Keys come in order: metadata, checkpoint chunks, deltas, then one-key entries.
  const json = (v: Buffer): unknown => JSON.parse(v.toString("utf8"));
  for await (const chunk of chunks) {
    for (const [k, v] of chunk) {
      // Raw entries sort before every JSON part that refers to them.
      if (k.startsWith(RAW_PREFIX)) raw.entry(k, v);
      else if (k.startsWith(BIN_BASE_PREFIX)) {
        layout.binChunks++;
        binBase.push(v);
        for (const s of readSections(v)) binaryMaps.add(s.name);
      } else if (k === META_KEY) state.meta = json(v) as Record<string, unknown>;
      else if (k.startsWith(BASE_PREFIX)) {
        layout.baseChunks++;
        layout.baseBytes += v.length;
        for (const [name, kv] of json(v) as [string, unknown[]][]) {
          if (skip?.has(name)) continue;
          jsonMaps.add(name);
          state.loadMapEntries(name, kv, (key, n) => raw.resolve(name, key, n));
          layout.baseKeys += kv.length / 2;
          await pace(kv.length / 2);
        }
      } else if (k.startsWith(DELTA_PREFIX)) {
        layout.deltaKeys.push(k);
        layout.nextDelta = parseInt(k.slice(DELTA_PREFIX.length), 10) + 1;
        if (k.endsWith(BIN_DELTA)) {
          deltas.push(v);
          for (const s of readSections(v)) {
            binaryMaps.add(s.name);
            layout.deltaEntries += s.count;
          }
        } else {
          layout.jsonBytes += v.length;
          const maps = json(v) as StateDelta["maps"];
          for (const [name] of maps) jsonMaps.add(name);
          deltas.push(maps);
        }
      } else if (!skip?.has(k.slice(0, k.indexOf(SEP)))) {
        layout.legacyKeys.push(k);
        legacy.push([k, json(v)]);
        jsonMaps.add(k.slice(0, k.indexOf(SEP)));
      }
    }
  }
  const binDeltas = deltas.filter((v): v is Buffer => Buffer.isBuffer(v));
  const bulk = new Set([...binaryMaps].filter((name) => !jsonMaps.has(name) && !skip?.has(name)));
  // The binary maps loaded key by key below leave out those loaded in bulk, and skipped.
  const apart = skip ? new Set([...bulk, ...skip]) : bulk;
  // Indexing is ~8x cheaper per key than a JSON entry's parse and Map.set (its steps
  // count two units per key).
  // Lazily: the records are partitioned now and placed in their indexes as lookups need
  // them, then in the background while no load is busy (cold-settle.ts loadsBusy): ~half of
  // this step's CPU (1M keys: ~0.1-0.2 s) leaves the path to a restart's first answers.
  for (const n of state.loadBinaryAll([...binBase, ...binDeltas], bulk, true)) await pace(n / 16);
  // The rest in the order of their keys: the checkpoint's binary chunks (their key counts
  // size the indexes first), one-key entries, then the deltas.
  state.reserveBinary(binBase, apart);
  for (const v of binBase) await pace(state.loadBinary(v, apart) / 8);
  for (const [k, v] of legacy) state.loadEntry(k, v);
  // The binary deltas' keys are reserved for too (without a checkpoint, as after an
  // ingest of new users, they are all of them), the indexes shrunk after if that was much
  // too many (keys repeated across deltas).
  state.reserveBinary(binDeltas, apart);
  // One-key entries and deltas never coexist: the first snapshot after loading one-key
  // entries is a checkpoint that deletes them.
  for (const v of deltas) {
    if (Buffer.isBuffer(v)) {
      await pace(state.loadBinary(v, apart) / 8);
      continue;
    }
    for (const [name, kv, dels] of v) {
      if (skip?.has(name)) continue;
      state.loadMapEntries(name, kv, (key, n) => raw.resolve(name, key, n));
      for (const k of dels) state.loadMapEntry(name, k, undefined, true);
      layout.deltaEntries += kv.length / 2 + dels.length;
      layout.jsonEntries += kv.length / 2 + dels.length;
      await pace(kv.length / 2 + dels.length);
    }
  }
  state.fitCold();
  layout.raw = raw.done((name, key) => state.map(name).get(key));
  return { state, layout };
}
