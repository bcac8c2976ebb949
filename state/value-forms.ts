/**
 * How a stage state's values are persisted: plain values in JSON (byte values as base64, or a
 * reference to a raw entry), and the stored forms (JSON text, a codec's bytes) that text and codec
 * maps keep their values in until read.
 */

import type { ValueCodec } from "../runtime/index.js";
import { TAG_TEXT, type ColdValue } from "./cold-records.js";
import type { RawResolver } from "./stage-state-types.js";

/** A value of a text map as persisted: its JSON text (loaded values are text already). */
const asText = (v: unknown): unknown => (typeof v === "string" ? v : JSON.stringify(v));

/**
 * Binary values (a Uint8Array as a map's value, e.g. parse's dedupe segments) are persisted as
 * BINARY_TAG + base64 inside the JSON, and come back as Uint8Array on load: base64 is ~1.37
 * bytes per byte where JSON's {"0":..} form of a typed array is ~6, and is decoded natively.
 * (Strings never start with the tag: a JSON text starts with a printable character, and map
 * values that are plain strings are names and ids.)
 */
const BINARY_TAG = "\u0000b64:";
export const persisted = (v: unknown): unknown =>
  v instanceof Uint8Array
    ? BINARY_TAG + Buffer.from(v.buffer, v.byteOffset, v.length).toString("base64")
    : v;
/**
 * A large byte value held in a LevelDB entry of its own (raw-values.ts): RAW_TAG + the entry's
 * number stands in the JSON for it, and a load gives the entry's bytes back in its place.
 */
export const RAW_TAG = "\u0000raw:";
export const restored = (v: unknown, key?: string, raw?: RawResolver): unknown => {
  if (typeof v !== "string") return v;
  if (v.startsWith(BINARY_TAG))
    return new Uint8Array(Buffer.from(v.slice(BINARY_TAG.length), "base64"));
  return raw && key !== undefined && v.startsWith(RAW_TAG) ? raw(key, v.slice(RAW_TAG.length)) : v;
};
/**
 * A map whose values are kept in a stored form until read: JSON text (text maps) or a codec's
 * bytes. `encode` gives a live value's stored form, `stored` tells the two apart.
 */
export interface StoredForm {
  encode(v: unknown): unknown;
  decode(stored: unknown): unknown;
  stored(v: unknown): boolean;
}
export const TEXT: StoredForm = {
  encode: asText,
  decode: (v) => JSON.parse(v as string),
  stored: (v) => typeof v === "string",
};
export const codecForm = (c: ValueCodec<unknown>): StoredForm => ({
  encode: (v) => (v instanceof Uint8Array || typeof v === "string" ? v : c.encode(v)),
  decode: (v) => c.decode(v),
  // Bytes, or a value from before the map had a codec (a text map's JSON text).
  stored: (v) => v instanceof Uint8Array || typeof v === "string",
});

/** How a form-less map's cold values (written while it had a form) are stored. */
export const JSON_FORM: StoredForm = {
  encode: (v) => JSON.stringify(v),
  decode: (v) => (v instanceof Uint8Array ? v : JSON.parse(v as string)),
  stored: () => false,
};

/** A cold value decoded as the map's form reads it. */
export const decodeCold = (c: ColdValue, form: StoredForm): unknown =>
  c.tag === TAG_TEXT
    ? form.decode(c.buf.toString("utf8", c.start, c.end))
    : form.decode(c.buf.subarray(c.start, c.end));
/** A cold value in the form a JSON load would have given (text, or a copy of the bytes). */
export const storedCold = (c: ColdValue): string | Uint8Array =>
  c.tag === TAG_TEXT
    ? c.buf.toString("utf8", c.start, c.end)
    : new Uint8Array(c.buf.subarray(c.start, c.end));
