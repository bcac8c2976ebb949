import { describe, expect, it } from "vitest";
import { createRatingsBuilder } from "../actors/sources/als-matrix.js";
import { isPacked, packIds } from "../actors/sources/als-ids.js";
import {
  createAlsIndex,
  deserialiseModel,
  readStoredModel,
  storeModel,
} from "../actors/sources/als-model.js";
import { IMPLICIT_DEFAULTS, trainAls, type AlsModel } from "../actors/sources/als.js";
import { seededRandom } from "../actors/sources/types.js";

/**
 * Issue 16 point 3: a served ALS model finds a user's row through packed ids (als-ids.ts), not
 * an array of id strings and a Map<string, number> (~90 B per user with a model of 1M users,
 * bench step 7). The stored model's bytes hold the ids packed, so a restart indexes them
 * without a string per user; a model stored before (ids in its JSON header) still restores.
 */

// Ids of several shapes: ASCII, non-ASCII (UTF-8 of 2-4 bytes), one that a JSON header escapes.
const ids = (n: number) =>
  Array.from({ length: n }, (_, u) =>
    u % 7 === 3 ? `ü${u}-€` : u % 11 === 5 ? `q"\\${u}🙂` : `u${u}`,
  );

function model(n: number): AlsModel {
  const rand = seededRandom(3);
  const b = createRatingsBuilder();
  const users = ids(n);
  for (let u = 0; u < n; u++)
    for (let i = 0; i < 6; i++) if (rand() < 0.5) b.add(users[u]!, `i${(u + i * 3) % 40}`, 1);
  return trainAls(b.build(), { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 3 });
}

/** The "ALS1" bytes a model was stored as before: every user id in the JSON header. */
function storedBefore(m: AlsModel, at: number): Uint8Array {
  const users = Array.from({ length: m.users.length }, (_, x) => m.users.at(x)!);
  const header = new TextEncoder().encode(
    JSON.stringify({ settings: m.settings, users, items: m.items, at }),
  );
  const start = 8 + header.length + ((4 - ((8 + header.length) % 4)) % 4);
  const out = new Uint8Array(start + m.U.byteLength + m.V.byteLength);
  new DataView(out.buffer).setUint32(0, 0x414c5331);
  new DataView(out.buffer).setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(m.U.buffer, m.U.byteOffset, m.U.byteLength), start);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start + m.U.byteLength);
  return out;
}

const answers = (m: AlsModel, users: string[]) => {
  const idx = createAlsIndex(m);
  return users.map((u) => idx.candidates(u, 5));
};

describe("ALS model ids packed", () => {
  it("finds every id (ASCII or not) and no other, for at most 22 B per id beyond its UTF-8", () => {
    const list = ids(5_000);
    const p = packIds(list);
    expect(p.length).toBe(list.length);
    list.forEach((id, x) => expect(p.indexOf(id)).toBe(x));
    list.forEach((id, x) => expect(p.at(x)).toBe(id));
    for (const other of ["", "u", "u5000", "ü3-", "u1 ", "U1"]) expect(p.indexOf(other)).toBe(-1);
    const utf8 = list.reduce((n, id) => n + Buffer.byteLength(id), 0);
    const held = p.bytes.byteLength + p.starts.byteLength + p.tableBytes;
    // Its length (2), where it starts (4), and 2-4 table slots of 4 (the table is a power of two
    // at least twice the ids): ~14 B at 1M ids, against ~90 B for a string, an array slot and a
    // Map entry.
    expect((held - utf8) / list.length).toBeLessThanOrEqual(22);
  });

  it("serves a stored model from packed ids over its stored bytes, same answers", () => {
    const m = model(300);
    const users = [...ids(300).filter((_, u) => u % 13 === 0), "nobody"];
    const want = answers(m, users);
    expect(want.filter((a) => a.length > 0).length).toBeGreaterThan(10);
    const kept = storeModel(m, 42);
    // The served model holds no id strings: its ids are views on the stored bytes.
    expect(isPacked(kept.model.users)).toBe(true);
    if (isPacked(kept.model.users)) expect(kept.model.users.bytes.buffer).toBe(kept.stored.buffer);
    expect(answers(kept.model, users)).toEqual(want);
    // Restored from the bytes (a fresh buffer, as a snapshot's load gives): the same.
    const back = readStoredModel(kept.stored.slice(0));
    expect(back.at).toBe(42);
    expect(isPacked(back.model.users)).toBe(true);
    expect(answers(back.model, users)).toEqual(want);
    // At an offset that is not 4-byte aligned (copies): the same.
    const odd = new Uint8Array(kept.stored.byteLength + 1);
    odd.set(kept.stored, 1);
    expect(answers(readStoredModel(odd.subarray(1)).model, users)).toEqual(want);
    // Tools get the ids as an array.
    expect(deserialiseModel(kept.stored.slice(0)).users).toEqual(m.users);
  });

  it("restores a model stored with its ids in the JSON header (before), same answers", () => {
    const m = model(200);
    const users = ids(200).filter((_, u) => u % 9 === 0);
    const back = readStoredModel(storedBefore(m, 7));
    expect(back.at).toBe(7);
    expect(isPacked(back.model.users)).toBe(true);
    expect(answers(back.model, users)).toEqual(answers(m, users));
    const b64 = readStoredModel({ at: 9, b64: Buffer.from(storedBefore(m, 7)).toString("base64") });
    expect(b64.at).toBe(9);
    expect(answers(b64.model, users)).toEqual(answers(m, users));
  });
});
