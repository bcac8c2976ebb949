/**
 * Writing snapshots: what a snapshot writes (a delta, a plain checkpoint of the JSON maps, or a
 * checkpoint of everything) as LevelDB operations, and the bookkeeping of what is then on disk.
 * The rules are store-layout.ts's; the store commits the operations (store.ts).
 */

import type { StageStateInternal } from "./stage-state.js";
import {
  BASE_PREFIX,
  BIN_BASE_PREFIX,
  BIN_DELTA,
  CHUNK,
  DELTA_PREFIX,
  META_KEY,
  pad,
  type OnDisk,
  type Op,
} from "./store-layout.js";

/** When a snapshot is a checkpoint (StateDbOptions, with their defaults applied). */
export interface CheckpointLimits {
  checkpointMin: number;
  plainMin: number;
  plainMinBytes: number;
}

/**
 * A checkpoint: the whole state in chunks, replacing the old checkpoint, every delta and
 * any one-key entries, plus the metadata.
 */
export function checkpointOps(disk: OnDisk, state: StageStateInternal): Op[] {
  const ops: Op[] = [];
  const { binary, chunks: bin } = state.binaryCheckpoint(CHUNK);
  bin.forEach((value, n) =>
    ops.push({ type: "put", key: BIN_BASE_PREFIX + pad(n), value, valueEncoding: "buffer" }),
  );
  for (let n = bin.length; n < disk.binChunks; n++)
    ops.push({ type: "del", key: BIN_BASE_PREFIX + pad(n) });
  disk.binChunks = bin.length;
  jsonBaseOps(disk, state, binary, ops);
  for (const k of disk.deltaKeys) ops.push({ type: "del", key: k });
  for (const k of disk.legacyKeys) ops.push({ type: "del", key: k });
  ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
  disk.deltaKeys = [];
  disk.legacyKeys = [];
  disk.deltaEntries = 0;
  disk.jsonEntries = 0;
  disk.jsonBytes = 0;
  return ops;
}

/** The JSON checkpoint chunks: every map not in `binary`, replacing the old chunks. */
function jsonBaseOps(disk: OnDisk, state: StageStateInternal, binary: Set<string>, ops: Op[]) {
  let chunks = 0;
  let chunk: [string, unknown[]][] = [];
  let inChunk = 0;
  let keys = 0;
  let bytes = 0;
  const put = () => {
    const value = JSON.stringify(chunk);
    bytes += value.length;
    ops.push({ type: "put", key: BASE_PREFIX + pad(chunks++), value });
    chunk = [];
    inChunk = 0;
  };
  for (const [name, data] of state.allMaps()) {
    if (binary.has(name)) continue;
    let kv: unknown[] = [];
    for (const [k, v] of data) {
      // A byte value written before is referred to again, not written again.
      kv.push(k, v instanceof Uint8Array ? disk.raws.value(ops, name, k, v, false) : v);
      keys++;
      if (++inChunk >= CHUNK) {
        chunk.push([name, kv]);
        kv = [];
        put();
      }
    }
    if (kv.length > 0) chunk.push([name, kv]);
  }
  if (inChunk > 0) put();
  for (let n = chunks; n < disk.baseChunks; n++)
    ops.push({ type: "del", key: BASE_PREFIX + pad(n) });
  disk.baseChunks = chunks;
  disk.baseKeys = keys;
  disk.baseBytes = bytes;
}

/**
 * A snapshot's operations: the dirty keys taken now (synchronously: the state may change right
 * after) as a delta, a plain checkpoint or a checkpoint, with the metadata and the raw entries
 * written or orphaned. `disk` counts them as written (SnapshotStore.capture).
 */
export function captureOps(
  disk: OnDisk,
  limits: CheckpointLimits,
  state: StageStateInternal,
): { keys: number; ops: Op[] } {
  // Raw entries of byte values written now, and of those superseded or deleted.
  const rawOps: Op[] = [];
  disk.raws.orphans(rawOps);
  const delta = state.takeDelta((map, key, v) => disk.raws.value(rawOps, map, key, v, true));
  if (disk.raws.held)
    for (const [name, puts, dels] of delta.maps) {
      if (delta.binary.has(name)) continue;
      for (let i = 0; i < puts.length; i += 2)
        disk.raws.written(rawOps, name, puts[i] as string, puts[i + 1]);
      for (const k of dels) disk.raws.written(rawOps, name, k, undefined);
    }
  let ops: Op[];
  // Twice the live keys, known once a restart's lazy load has placed its records (in the
  // background, seconds after the load): until then no checkpoint by this rule, which only
  // bounds what the deltas may hold (the next snapshots see it again).
  const entries = disk.deltaEntries + delta.size;
  const live = entries > limits.checkpointMin ? state.keyCountSettled() : 0;
  if (
    disk.legacyKeys.length > 0 ||
    (live !== undefined && entries > Math.max(limits.checkpointMin, 2 * live))
  ) {
    ops = checkpointOps(disk, state);
  } else {
    ops = [];
    const maps = delta.maps.filter(([name]) => !delta.binary.has(name));
    let jsonSize = 0;
    for (const [, puts, dels] of maps) jsonSize += puts.length / 2 + dels.length;
    const text = maps.length > 0 ? JSON.stringify(maps) : "";
    // A plain checkpoint: the plain maps as they are now (this delta's JSON part included)
    // replace the JSON checkpoint chunks, and every delta's JSON part goes. Bytes count
    // too: a few keys with large values (collaborative's model, ~60 MB of JSON at 1M
    // users, one key rewritten at each training) piled up in the deltas by the key rule.
    const plain =
      disk.jsonEntries + jsonSize > Math.max(limits.plainMin, 2 * disk.baseKeys) ||
      disk.jsonBytes + text.length > Math.max(limits.plainMinBytes, 2 * disk.baseBytes);
    if (plain) {
      jsonBaseOps(disk, state, delta.binary, ops);
      const json = disk.deltaKeys.filter((k) => !k.endsWith(BIN_DELTA));
      for (const k of json) ops.push({ type: "del", key: k });
      disk.deltaKeys = disk.deltaKeys.filter((k) => k.endsWith(BIN_DELTA));
      disk.deltaEntries -= disk.jsonEntries;
      disk.jsonEntries = 0;
      disk.jsonBytes = 0;
    }
    if (delta.size > 0) {
      const key = DELTA_PREFIX + pad(disk.nextDelta++);
      if (maps.length > 0 && !plain) {
        ops.push({ type: "put", key, value: text });
        disk.deltaKeys.push(key);
        disk.jsonEntries += jsonSize;
        disk.jsonBytes += text.length;
      }
      if (delta.bin) {
        const value = delta.bin;
        ops.push({ type: "put", key: key + BIN_DELTA, value, valueEncoding: "buffer" });
        disk.deltaKeys.push(key + BIN_DELTA);
      }
      disk.deltaEntries += delta.size - (plain ? jsonSize : 0);
    }
    ops.push({ type: "put", key: META_KEY, value: JSON.stringify(state.meta) });
  }
  if (rawOps.length > 0) ops.push(...rawOps);
  return { keys: delta.size, ops };
}
