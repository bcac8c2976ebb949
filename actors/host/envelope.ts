import {
  binaryWithHead,
  decodeBinaryHop,
  encodeBinaryHop,
  isBinaryHop,
  peekBinaryHead,
} from "./hop-binary.js";

/**
 * The wire form of a hop message (see host.ts): a batch of records from one stage instance to
 * the next, with the input position it covers, the position the previous hop of its subject
 * covered, and the event-time progress.
 *
 * Written in binary by default (hop-binary.ts: a fixed head, then MessagePack records, about half
 * the CPU of JSON and ~20% fewer bytes). Two JSON forms, told apart by their fields, are still
 * read (hops written before the binary form) and written on request (`form`):
 *
 *   {"upTo":9,"prev":4,"wm":5,"recs":[{"u":"a","n":1},{"u":"b","n":2}]}        objects
 *   {"upTo":9,"prev":4,"wm":5,"k":["u","n"],"rows":[["a",1],["b",2]]}          rows
 *
 * `prev` chains a subject's hops: a hop whose `prev` is beyond what its reader has applied
 * follows one the reader has not seen (lost in flight and re-sent after it), and waits for it.
 * Messages written before `prev` existed, and tests, may leave it out: 0.
 *
 * Records of a batch nearly always share one shape, so the rows form writes each key once per
 * batch instead of once per record: about 30% fewer bytes, and encoding and decoding (with
 * per-shape functions built once) take about 20% less CPU than the objects form, which was the
 * largest single cost of the pipeline. A record of another shape stays an object inside `rows`
 * (a row is an array, anything else is a record as it is). `upTo` leads both forms, so the host
 * can read it without parsing the batch. Decoding accepts both forms: messages written before
 * the rows form, and tests, use objects.
 *
 * `ix` (parse's hops only, when it applied idle markers in the range the hop covers): each
 * marker's EVENTS sequence and the progress it moved to, flat, `[seq, progress, seq, ...]`.
 * A stage that needs to know where event time jumped without records reads it (the
 * collaborative source's training points); the others never look.
 */

/** A hop message: a batch of records from one stage instance to the next. */
export interface Envelope<R> {
  /** Producer's input sequence (or, for parse, the last event sequence) this batch covers. */
  upTo: number;
  /** `upTo` of the producer's previous hop on the same subject (0: none, or not written). */
  prev?: number;
  /** Event-time progress: max event time (ms) over the whole input prefix, -1 before any. */
  wm: number;
  recs: R[];
  /** Idle markers applied in the range: `[seq, progress, ...]` (see above). */
  ix?: readonly number[];
}

interface WireEnvelope {
  upTo: number;
  prev?: number;
  wm: number;
  ix?: number[];
  recs?: unknown[];
  k?: string[];
  rows?: unknown[];
}

type ObjectOf = (row: unknown[]) => unknown;

const enc = new TextEncoder();
const dec = new TextDecoder();

// Shapes are few (one per record type); the bound only matters for foreign producers.
const MAX_SHAPES = 64;
const rowDecoders = new Map<string, ObjectOf>();

const shapeKey = (keys: readonly string[]) => keys.join("\u0000");
// An object literal would set the prototype for "__proto__" where JSON.parse makes a property.
const codegenSafe = (keys: readonly string[]) => !keys.includes("__proto__");

/**
 * The values of `r` in the order of `keys` if `r` has exactly those keys, in that order, and no
 * value that JSON would write differently in an array (undefined, functions, symbols: dropped
 * from an object, null in an array); else undefined.
 *
 * Object.keys and Object.values rather than named reads: records built with object spread (parse
 * emits `{ ...event, s, wb }`) come in many hidden classes, and named reads on them went
 * megamorphic (~1 µs per record, against ~0.1 µs this way).
 */
function rowOf(r: object, keys: readonly string[]): unknown[] | undefined {
  const own = Object.keys(r);
  if (own.length !== keys.length) return undefined;
  for (let x = 0; x < own.length; x++) if (own[x] !== keys[x]) return undefined;
  const values = Object.values(r);
  for (const v of values) {
    if (v === undefined || typeof v === "function" || typeof v === "symbol") return undefined;
  }
  return values;
}

function rowDecoder(keys: string[]): ObjectOf {
  const id = shapeKey(keys);
  let f = rowDecoders.get(id);
  if (f === undefined) {
    if (rowDecoders.size >= MAX_SHAPES || !codegenSafe(keys))
      return (row) => Object.fromEntries(keys.map((k, x) => [k, row[x]]));
    const body = `return {${keys.map((k, x) => `${JSON.stringify(k)}: r[${x}]`).join(", ")}};`;
    f = new Function("r", body) as ObjectOf;
    rowDecoders.set(id, f);
  }
  return f;
}

const isRecordObject = (r: unknown): r is object =>
  typeof r === "object" && r !== null && !Array.isArray(r);

/** How a hop is written: binary (the default), JSON rows, JSON objects. */
export type HopForm = "binary" | "rows" | "objects";
let defaultForm: HopForm = "binary";

/**
 * The form `encodeEnvelope` writes by default: a comparison knob of the bench
 * (RECO_HOP_FORMAT=json gives the JSON rows form, read by bin/, never by a stage).
 */
export function setDefaultHopForm(form: HopForm): void {
  defaultForm = form;
}

/**
 * Encodes a hop message. `form`: true (or absent) is the default form (binary unless
 * setDefaultHopForm said otherwise); false is the JSON objects form (RECO_HOP_ROWS=0, read by
 * bin/); or a form by name. The JSON rows form is used when at least two records share the
 * first's shape, else the objects form. `prev` (see the top of this file) is written when given.
 */
export function encodeEnvelope(
  upTo: number,
  wm: number,
  recs: readonly unknown[],
  prev?: number,
  form: boolean | HopForm = true,
  ix?: readonly number[],
): Uint8Array {
  const f = form === true ? defaultForm : form === false ? "objects" : form;
  if (f === "binary") return encodeBinaryHop(upTo, wm, recs, prev, ix);
  const rows = f === "rows";
  const head = {
    upTo,
    ...(prev === undefined ? {} : { prev }),
    wm,
    ...(ix !== undefined && ix.length > 0 ? { ix } : {}),
  };
  const first = recs[0];
  if (rows && recs.length >= 2 && isRecordObject(first)) {
    const keys = Object.keys(first);
    const rows = new Array<unknown>(recs.length);
    let k = 0;
    for (; k < recs.length; k++) {
      const r = recs[k];
      // An array record would read as a row: such a batch keeps the objects form.
      if (Array.isArray(r)) break;
      rows[k] = (isRecordObject(r) && rowOf(r, keys)) || r;
    }
    if (k === recs.length) return enc.encode(JSON.stringify({ ...head, k: keys, rows }));
  }
  return enc.encode(JSON.stringify({ ...head, recs }));
}

/**
 * Decoded hop messages that several stage instances of this process read (popularity and
 * trending both read reco.items.<q>): the first reader's decoding is kept for the next one, so
 * the batch is parsed once. Readers treat records as read-only (they always have: a record may
 * also sit in the sender's buffer). Bounded: an entry nobody takes is dropped oldest first.
 */
const shared = new Map<string, { env: Envelope<unknown>; left: number }>();
// A reader can run a few hundred messages ahead of another (popularity skips most records):
// about 10 MB of decoded records at most. A hop without records (progress, an idle marker's)
// weighs one: counted by its records only, those a reader never took (it skipped the message
// as covered after a redelivery) stayed for good.
const MAX_SHARED_RECORDS = 40_000;
let sharedRecords = 0;
const weightOf = (env: Envelope<unknown>) => Math.max(1, env.recs.length);

/** Decodings kept for other readers now, and their weight (records, at least one each). */
export function sharedHeld(): { entries: number; weight: number } {
  return { entries: shared.size, weight: sharedRecords };
}
let reading: { data: Uint8Array; key: string; env: Envelope<unknown> | undefined } | undefined;

/**
 * Runs `fn` (a stage's handle) so that decodeEnvelope(data) inside it reuses, or keeps for the
 * other readers, the decoding of the message identified by `key` (stream, sequence and anything
 * else that tells messages apart). `readers`: how many readers of this message the process has
 * (default 2); the decoding is kept until the other `readers - 1` have taken it.
 */
export function readShared<T>(key: string, data: Uint8Array, fn: () => T, readers = 2): T {
  const hit = shared.get(key);
  if (hit !== undefined && --hit.left <= 0) {
    shared.delete(key);
    sharedRecords -= weightOf(hit.env);
  }
  const r: NonNullable<typeof reading> = { data, key, env: hit?.env };
  reading = r;
  let result: T;
  try {
    result = fn();
  } finally {
    reading = undefined;
  }
  const decoded = r.env;
  if (hit === undefined && readers > 1 && decoded !== undefined && Array.isArray(decoded.recs)) {
    shared.set(key, { env: decoded, left: readers - 1 });
    sharedRecords += weightOf(decoded);
    for (const [k, old] of shared) {
      if (sharedRecords <= MAX_SHARED_RECORDS) break;
      shared.delete(k);
      sharedRecords -= weightOf(old.env);
    }
  }
  return result;
}

/**
 * Hops handed from one stage of a chain to the next within the process (host-chain.ts): the
 * envelope itself behind an empty token, so nothing is encoded or decoded on the way. Weak: a
 * token is dropped with the input message that made it.
 */
const carried = new WeakMap<Uint8Array, Envelope<unknown>>();

/** A token that decodeEnvelope reads as `env` (records shared, never copied). */
export function carryEnvelope(env: Envelope<unknown>): Uint8Array {
  const token = new Uint8Array(0);
  carried.set(token, env);
  return token;
}

/** Whether `data` is a token of carryEnvelope rather than a hop's bytes. */
export function isCarried(data: Uint8Array): boolean {
  return data.length === 0 && carried.has(data);
}

/** Decodes a hop message of either form. */
export function decodeEnvelope<R>(data: Uint8Array): Envelope<R> {
  // A carried hop leaves the input metrics' last decode alone: it is not the host's input.
  if (data.length === 0) {
    const env = carried.get(data);
    if (env !== undefined) return env as Envelope<R>;
  }
  let env: Envelope<R>;
  if (reading !== undefined && reading.data === data) {
    reading.env ??= decode(data);
    env = reading.env as Envelope<R>;
  } else env = decode<R>(data);
  lastDecoded = data;
  lastDecodedRecords = Array.isArray(env.recs) ? env.recs.length : 0;
  return env;
}

let lastDecoded: Uint8Array | undefined;
let lastDecodedRecords = 0;

/**
 * The records of `data` if it was the last hop message decoded (the host asks right after a
 * stage handled it, for reco_stage_events_in_total); 0 when the stage did not decode it.
 */
export function recordsOfLastDecode(data: Uint8Array): number {
  return lastDecoded === data ? lastDecodedRecords : 0;
}

function decode<R>(data: Uint8Array): Envelope<R> {
  if (isBinaryHop(data)) return decodeBinaryHop<R>(data);
  const e = JSON.parse(dec.decode(data)) as WireEnvelope;
  if (e.k === undefined || !Array.isArray(e.rows) || !Array.isArray(e.k)) return e as Envelope<R>;
  const toObject = rowDecoder(e.k);
  const rows = e.rows;
  const recs = new Array<R>(rows.length);
  for (let j = 0; j < rows.length; j++) {
    const row = rows[j];
    recs[j] = (Array.isArray(row) ? toObject(row) : row) as R;
  }
  return {
    upTo: e.upTo,
    ...(e.prev === undefined ? {} : { prev: e.prev }),
    wm: e.wm,
    recs,
    ...(e.ix === undefined ? {} : { ix: e.ix }),
  };
}

const HEAD = /^\{"upTo":\d+,(?:"prev":\d+,)?"wm":-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?,/;

/**
 * The same hop message with another `upTo`, `prev` and `wm`, its records untouched (the bytes
 * after the head are copied, not re-encoded): a stage that passes a batch on as it came (the
 * watermark stage, when no record is late) saves encoding it again. Undefined when the message
 * does not start the way encodeEnvelope writes it.
 */
export function withHead(
  data: Uint8Array,
  upTo: number,
  wm: number,
  prev?: number,
): Uint8Array | undefined {
  if (isBinaryHop(data)) return binaryWithHead(data, upTo, wm, prev);
  const m = HEAD.exec(dec.decode(data.subarray(0, 96)));
  if (m === null || !Number.isSafeInteger(upTo) || !Number.isFinite(wm)) return undefined;
  if (prev !== undefined && !Number.isSafeInteger(prev)) return undefined;
  // The head is ASCII, so its length in characters is its length in bytes.
  const p = prev === undefined ? "" : `"prev":${prev},`;
  const head = enc.encode(`{"upTo":${upTo},${p}"wm":${JSON.stringify(wm)},`);
  const out = new Uint8Array(head.length + data.length - m[0].length);
  out.set(head, 0);
  out.set(data.subarray(m[0].length), head.length);
  return out;
}

/** Reads `upTo` from a hop message without a full parse when it leads the JSON, as we write it. */
export function peekUpTo(data: Uint8Array): number {
  return peekHead(data).upTo;
}

/**
 * Reads `upTo` and `prev` (0 when absent) from a hop message, without a full parse when they
 * lead the JSON, as we write them.
 */
export function peekHead(data: Uint8Array): { upTo: number; prev: number } {
  if (isBinaryHop(data)) {
    const { upTo, prev } = peekBinaryHead(data);
    return { upTo, prev };
  }
  const head = dec.decode(data.subarray(0, 64));
  const m = /^\{"upTo":(\d+)(?:,"prev":(\d+))?[,}]/.exec(head);
  if (m) return { upTo: Number(m[1]), prev: Number(m[2] ?? 0) };
  const e = JSON.parse(dec.decode(data)) as WireEnvelope;
  return { upTo: Number(e.upTo), prev: Number(e.prev ?? 0) };
}
