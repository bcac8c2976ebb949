import type { ValueCodec } from "../../runtime/index.js";
import type { UserHistory } from "./history.js";
import { UserItems } from "./history.js";
import type { UserValue } from "./user-stores.js";

/**
 * The stored form of the covisit stage's per-user value (user-stores.ts: co-visitation's recent
 * items and the prequential scorer's history of the user) as bytes instead of JSON text.
 *
 * Why: every user who had an event since the last snapshot has this value written again, and its
 * JSON text was the largest text of step 2's snapshots after the neighbour lists (~200 bytes per
 * event; JSON.stringify of it ~7% of the covisit stage's CPU in bench/sources-micro.ts, most of
 * it printing the history's decayed doubles to their shortest decimal, and JSON.parse when a
 * user's value is read back after a snapshot). Here the doubles are copied as they are: the same
 * values come back (JSON.parse of the printed form gave the same doubles), with no printing or
 * parsing.
 *
 * Layout (version 1), little-endian, each string as u32 (its UTF-16 length, bit 31 set when its
 * characters are written as UTF-16 code units, else as latin1 bytes) and its characters:
 *   0  "U" 1 flags 0          magic, version, flags (1: r, 2: h, 4: a bare recent list)
 *   r: u32 n, then n × (item, ts f64, w f64, u8 has session, session)
 *   h: u32 n, then n × (item, s f64, ts f64, w f64, type, n f64, done f64)
 * A value stored before this codec (JSON text) is still read.
 */

type Recent = NonNullable<UserValue["r"]>;
/** A stored value: `{ r, h }`, or a bare recent list (user-stores.ts reads both). */
export type StoredUserValue = UserValue | Recent;
type Stored = StoredUserValue;

const MAGIC = 0x55;
const VERSION = 1;
const HAS_R = 1;
const HAS_H = 2;
const BARE = 4;
const WIDE = 0x80000000;

/** One growing scratch buffer for every encode (a value is copied out of it). */
let scratch = new Uint8Array(1 << 16);
let view = new DataView(scratch.buffer);
let at = 0;

const room = (n: number) => {
  if (at + n <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < at + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(scratch.subarray(0, at));
  scratch = next;
  view = new DataView(next.buffer);
};

const f64 = (v: number) => {
  room(8);
  view.setFloat64(at, v, true);
  at += 8;
};

const u32 = (v: number) => {
  room(4);
  view.setUint32(at, v >>> 0, true);
  at += 4;
};

const str = (s: string) => {
  const n = s.length;
  let wide = false;
  for (let x = 0; x < n; x++)
    if (s.charCodeAt(x) > 0xff) {
      wide = true;
      break;
    }
  u32(wide ? (n | WIDE) >>> 0 : n);
  if (wide) {
    room(2 * n);
    for (let x = 0; x < n; x++) view.setUint16(at + 2 * x, s.charCodeAt(x), true);
    at += 2 * n;
  } else {
    room(n);
    for (let x = 0; x < n; x++) scratch[at + x] = s.charCodeAt(x);
    at += n;
  }
};

const historyEntries = (h: UserHistory): Iterable<[string, UserHistoryTouch]> =>
  h instanceof Map ? h.entries() : h;
type UserHistoryTouch = UserItems extends Map<string, infer T> ? T : never;

export function encodeUserValue(v: Stored): Uint8Array {
  at = 0;
  const value: UserValue = Array.isArray(v) ? { r: v } : v;
  const flags =
    (value.r !== undefined ? HAS_R : 0) |
    (value.h !== undefined ? HAS_H : 0) |
    (Array.isArray(v) ? BARE : 0);
  room(4);
  scratch[at++] = MAGIC;
  scratch[at++] = VERSION;
  scratch[at++] = flags;
  scratch[at++] = 0;
  if (value.r !== undefined) {
    u32(value.r.length);
    for (const [item, ts, w, sess] of value.r) {
      str(item);
      f64(ts);
      f64(w);
      room(1);
      scratch[at++] = sess === null ? 0 : 1;
      if (sess !== null) str(sess);
    }
  }
  if (value.h !== undefined) {
    const h = value.h;
    u32(h instanceof Map ? h.size : h.length);
    for (const [item, x] of historyEntries(h)) {
      str(item);
      f64(x[0]);
      f64(x[1]);
      f64(x[2]);
      str(x[3]);
      f64(x[4]);
      f64(x[5]);
    }
  }
  return scratch.slice(0, at);
}

/** Strings up to this long are read character by character (see `text`). */
const SHORT = 64;
const codes: number[] = [];

export function decodeUserValue(stored: unknown): Stored {
  if (typeof stored === "string") return JSON.parse(stored) as Stored;
  if (!(stored instanceof Uint8Array)) return stored as Stored;
  const b = stored;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  if (b[0] !== MAGIC || b[1] !== VERSION)
    throw new Error(`covisit user value: unknown stored form (${b[0]},${b[1]})`);
  const flags = b[2]!;
  let p = 4;
  const num = () => {
    const v = dv.getFloat64(p, true);
    p += 8;
    return v;
  };
  const text = () => {
    const h = dv.getUint32(p, true);
    p += 4;
    const n = h & ~WIDE;
    let s: string;
    if (h & WIDE) {
      s = Buffer.from(b.buffer, b.byteOffset, b.length).toString("utf16le", p, p + 2 * n);
      p += 2 * n;
    } else if (n <= SHORT) {
      // Short ids (most): characters from the bytes, no call into the native decoder.
      codes.length = n;
      for (let x = 0; x < n; x++) codes[x] = b[p + x]!;
      s = String.fromCharCode.apply(null, codes);
      p += n;
    } else {
      s = Buffer.from(b.buffer, b.byteOffset, b.length).toString("latin1", p, p + n);
      p += n;
    }
    return s;
  };
  const out: UserValue = {};
  if (flags & HAS_R) {
    const n = dv.getUint32(p, true);
    p += 4;
    const r: Recent = new Array(n);
    for (let x = 0; x < n; x++) {
      const item = text();
      const ts = num();
      const w = num();
      const sess = b[p++] === 0 ? null : text();
      r[x] = [item, ts, w, sess];
    }
    if (flags & BARE) return r;
    out.r = r;
  }
  if (flags & HAS_H) {
    const n = dv.getUint32(p, true);
    p += 4;
    const h = new UserItems();
    for (let x = 0; x < n; x++) {
      const item = text();
      const s = num();
      const ts = num();
      const w = num();
      const t = text();
      const c = num();
      const done = num();
      h.set(item, [s, ts, w, t, c, done]);
    }
    out.h = h;
  }
  return out;
}

/** The codec of the covisit stage's "recent" map (state/stage-state.ts `codec`). */
export const userValueCodec: ValueCodec<StoredUserValue> = {
  encode: encodeUserValue,
  decode: decodeUserValue,
};
