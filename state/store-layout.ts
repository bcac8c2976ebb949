/**
 * The on-disk layout of one instance's snapshot: its keys, its chunk and checkpoint limits, the
 * LevelDB operations a snapshot is written as, and the bookkeeping of what is on disk.
 */

import { createRawValues, type RawValues } from "./raw-values.js";

/*
 * Layout of one instance's sublevel (values are UTF-8 JSON):
 *
 *   "\x01meta"            the metadata of the last snapshot (input sequence, progress, counts)
 *   "\x02a\0<n>"          a large byte value of a plain map, raw (raw-values.ts): the JSON parts
 *                         refer to it by n
 *   "\x02b\0<n>"          checkpoint chunk n: [[map, [k, v, k, v, ...]], ...], up to CHUNK keys
 *   "\x02c\0<n>"          binary checkpoint chunk n (sections.ts) of the stored-form maps
 *   "\x03d\0<seq>"        delta seq (12 digits): [[map, [k, v, ...], [deleted k, ...]], ...]
 *   "\x03d\0<seq>b"       the same delta's stored-form maps, binary (sections.ts)
 *   "<map>\0<key>"        one key per entry: the layout before deltas, still read on load
 *
 * A snapshot is one delta and the metadata in one batch: one LevelDB value however many keys
 * changed (writing a LevelDB entry per key cost more than the stages' own work at 60k events/s:
 * ~7 keys per event). Load applies the checkpoint, then the deltas in order. When the deltas
 * hold more keys than twice the live state (at least CHECKPOINT_MIN), the snapshot is a
 * checkpoint instead: the whole state in chunks, with every delta deleted, in the same batch, so
 * disk and load time stay proportional to the live state (amortised: each change is written at
 * most ~1.5 times).
 *
 * The plain maps' JSON is held to the same rule on its own (a plain checkpoint): when the deltas'
 * JSON parts hold more than twice the keys of the last JSON checkpoint (at least
 * PLAIN_CHECKPOINT_MIN), or twice its bytes (at least PLAIN_CHECKPOINT_MIN_BYTES), the snapshot rewrites the JSON checkpoint chunks from the plain maps and
 * deletes every delta's JSON part, keeping the binary parts. A JSON entry costs ~8x a binary
 * one to load, and a few thousand plain keys rewritten at every snapshot (covisit's per-item
 * counters) never brought the deltas near twice a state of a million binary keys: with 1M users
 * a restart parsed 306k JSON entries of covisit's ~20k plain keys before the blend could answer.
 * Plain and binary maps are apart on disk (a delta's JSON part holds only plain maps, its binary
 * part only binary ones), so the JSON checkpoint and the binary deltas load in either order.
 *
 * Maps with a stored form (text and codec maps: per-user profiles, histories, lists) are written
 * as binary sections, and a load keeps those entries' bytes as the maps' cold keys (cold-index.ts)
 * instead of parsing them: a restart reads bytes and indexes keys, and a key is decoded when the
 * stage first reads it.
 */
export const META_KEY = "\u0001meta";
export const BASE_PREFIX = "\u0002b\u0000";
export const BIN_BASE_PREFIX = "\u0002c\u0000";
export const DELTA_PREFIX = "\u0003d\u0000";
/** Suffix of a delta's binary part (sorts right after its JSON part). */
export const BIN_DELTA = "b";
export const CHUNK = 10_000;
/** Keys loaded between two turns of the event loop (~20-30 ms of work). */
export const LOAD_SLICE = 10_000;
export const CHECKPOINT_MIN = 100_000;
export const PLAIN_CHECKPOINT_MIN = 20_000;
export const PLAIN_CHECKPOINT_MIN_BYTES = 16 << 20;
/** Byte values this large get a raw entry (parse's 32 KiB dedupe segments stay base64). */
export const RAW_MIN_BYTES = 64 << 10;
export const pad = (n: number) => String(n).padStart(12, "0");

export type Op =
  | { type: "put"; key: string; value: string }
  | { type: "put"; key: string; value: Buffer; valueEncoding: "buffer" }
  | { type: "del"; key: string };

/** The entries in order, as LevelDB's nextv gives them (values as bytes). */
export type Chunk = [string, Buffer][];

/** What is on disk besides the metadata, as last loaded or written: counted by a load. */
export interface DiskCounts {
  baseChunks: number;
  binChunks: number;
  deltaKeys: string[];
  legacyKeys: string[];
  nextDelta: number;
  deltaEntries: number;
  /** Keys and bytes in the deltas' JSON parts, and in the JSON checkpoint chunks. */
  jsonEntries: number;
  baseKeys: number;
  jsonBytes: number;
  baseBytes: number;
}

/** DiskCounts with the raw entries on disk and the keys that hold them. */
export interface OnDisk extends DiskCounts {
  raws: RawValues;
}

/** The bookkeeping of an instance with nothing on disk. */
export const emptyDisk = (rawMin: number): OnDisk => ({
  baseChunks: 0,
  binChunks: 0,
  deltaKeys: [],
  legacyKeys: [],
  nextDelta: 1,
  deltaEntries: 0,
  jsonEntries: 0,
  baseKeys: 0,
  jsonBytes: 0,
  baseBytes: 0,
  raws: createRawValues(rawMin),
});

/** After the sublevel was cleared: nothing on disk (delta numbers go on from where they were). */
export function forgetDisk(disk: OnDisk, rawMin: number): void {
  disk.baseChunks = 0;
  disk.binChunks = 0;
  disk.deltaKeys = [];
  disk.legacyKeys = [];
  disk.deltaEntries = 0;
  disk.jsonEntries = 0;
  disk.baseKeys = 0;
  disk.jsonBytes = 0;
  disk.baseBytes = 0;
  disk.raws = createRawValues(rawMin);
}
