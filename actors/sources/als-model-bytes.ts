import { servedModel, type AlsModel, type ServedModel } from "./als-served.js";

/**
 * A model as bytes: the served form (ALS3, V alone) written, the older layouts (ALS1, ALS2)
 * still read, and its form in a state map (StoredModel).
 */

export const MAGIC = 0x414c5331; // "ALS1": user ids in the JSON header, then U and V (still read)
export const MAGIC2 = 0x414c5332; // "ALS2": user ids packed after the header, then U and V (still read)
export const MAGIC3 = 0x414c5333; // "ALS3": the served form, V alone

export const pad4 = (n: number) => (4 - (n % 4)) % 4;
export const pad8 = (n: number) => (8 - (n % 8)) % 8;

/**
 * The served model as bytes ("ALS3"): magic, header length, JSON header (settings, item ids, the
 * number of users trained on, the input point `at` when given, and `gram: true` when YᵀY follows),
 * then V (4-byte aligned), then YᵀY + λI (k × k doubles, 8-byte aligned) if the model has it.
 * Items × rank × 4 bytes and the ids: ~13 MB at 50k items and rank 64, whatever the users.
 */
export function encodeModel(
  m: ServedModel,
  at: number | undefined,
): { out: Uint8Array; start: number; gramAt: number } {
  const header = new TextEncoder().encode(
    JSON.stringify({
      settings: m.settings,
      users: m.users,
      items: m.items,
      ...(at === undefined ? {} : { at }),
      ...(m.YtY ? { gram: true } : {}),
    }),
  );
  const start = 8 + header.length + pad4(8 + header.length);
  const end = start + m.V.byteLength;
  const gramAt = end + pad8(end);
  const out = new Uint8Array(m.YtY ? gramAt + m.YtY.byteLength : end);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC3);
  dv.setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start);
  if (m.YtY) out.set(new Uint8Array(m.YtY.buffer, m.YtY.byteOffset, m.YtY.byteLength), gramAt);
  return { out, start, gramAt };
}

/** The model's bytes in its served form (user factors dropped), with input point `at` if given. */
export function serialiseModel(m: AlsModel | ServedModel, at?: number): Uint8Array {
  return encodeModel(servedModel(m), at).out;
}

/** A float array type: its element size, a fresh array and a view on bytes. */
export interface FloatArrayOf<T> {
  readonly BYTES_PER_ELEMENT: number;
  new (n: number): T;
  new (buffer: ArrayBufferLike, byteOffset: number, n: number): T;
}

/** `n` values of type `F` in `bytes` from `at`: a view when aligned to their size, else a copy. */
export function aligned<T extends Float32Array | Float64Array>(
  F: FloatArrayOf<T>,
  bytes: Uint8Array,
  at: number,
  n: number,
): T {
  const size = F.BYTES_PER_ELEMENT;
  if ((bytes.byteOffset + at) % size === 0) return new F(bytes.buffer, bytes.byteOffset + at, n);
  const out = new F(n);
  new Uint8Array(out.buffer).set(bytes.subarray(at, at + size * n));
  return out;
}

/**
 * The served model of `bytes`, its input point (-1 if none), and whether the bytes were of an
 * earlier form with user factors ("ALS1", "ALS2": U is skipped, never read into memory).
 */
export function readModel(bytes: Uint8Array): { model: ServedModel; at: number; legacy: boolean } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.byteLength < 8 ? 0 : dv.getUint32(0);
  if (magic !== MAGIC && magic !== MAGIC2 && magic !== MAGIC3) throw new Error("not an ALS model");
  const len = dv.getUint32(4);
  const head = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len))) as Pick<
    ServedModel,
    "settings" | "items" | "offline"
  > & { at?: number; users: string[] | number; idBytes?: number; gram?: boolean };
  const { at = -1, users: userField, idBytes = 0, settings, items, offline, gram: hasGram } = head;
  let start = 8 + len + pad4(8 + len);
  const users = typeof userField === "number" ? userField : userField.length;
  const k = settings.rank;
  if (magic !== MAGIC3) {
    // ALS2: where each id starts (u32), the ids, padded; then U (both forms): skipped.
    if (magic === MAGIC2) start += 4 * users + idBytes + pad4(idBytes);
    start += 4 * users * k;
  }
  // A view on `bytes` when the factors are 4-byte aligned (bytes of their own, as a snapshot's
  // load and serialiseModel give): one copy of the factors in memory, not two. Else a copy; and
  // a copy of an earlier form's, whose bytes (mostly user factors) are then left to the collector.
  const view = aligned(Float32Array, bytes, start, items.length * k);
  const V = magic === MAGIC3 ? view : view.slice();
  // ALS3 only: YᵀY after V, 8-byte aligned from the start of the bytes.
  const end = start + 4 * items.length * k;
  const YtY =
    magic === MAGIC3 && hasGram ? aligned(Float64Array, bytes, end + pad8(end), k * k) : undefined;
  return {
    model: { settings, items, V, users, ...(YtY ? { YtY } : {}), ...(offline ? { offline } : {}) },
    at,
    legacy: magic !== MAGIC3,
  };
}

/** The served model of `bytes` (V is a view on `bytes` when aligned: don't reuse `bytes`). */
export function deserialiseModel(bytes: Uint8Array): ServedModel {
  return readModel(bytes).model;
}

/**
 * A trained model as the collaborative stage keeps it in its state (map "model", one key per
 * kind): the served form's bytes with its input point in the header, which the served model's V
 * is a view on. Before: `{ at, b64 }` (base64 of the bytes), then the bytes with every user's
 * factors and id ("ALS1", "ALS2": 256 B per user at rank 64); both still read.
 */
export type StoredModel = Uint8Array | { at: number; b64: string };

/** The stored form of a model trained at input point `at`, and the model to serve from it. */
export function storeModel(
  m: AlsModel | ServedModel,
  at: number,
): { stored: Uint8Array; model: ServedModel } {
  const served = servedModel(m);
  const { out, start, gramAt } = encodeModel(served, at);
  // The same items and metrics; V (and YᵀY) become views on the stored bytes (m's are dropped).
  const V = new Float32Array(out.buffer, start, served.V.length);
  const YtY = served.YtY && new Float64Array(out.buffer, gramAt, served.YtY.length);
  return { stored: out, model: { ...served, V, ...(YtY ? { YtY } : {}) } };
}

/**
 * The served model and its input point from a stored form (any of them); `legacy`: an earlier
 * form with user factors, which the next checkpoint should replace by the served form.
 */
export function readStoredModel(s: StoredModel): {
  model: ServedModel;
  at: number;
  legacy: boolean;
} {
  if (s instanceof Uint8Array) return readModel(s);
  const m = readModel(Buffer.from(s.b64, "base64"));
  return { model: m.model, at: s.at, legacy: true };
}
