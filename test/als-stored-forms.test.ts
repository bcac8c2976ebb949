import { describe, expect, it } from "vitest";
import {
  createRatingsBuilder,
  createAlsIndex,
  deserialiseModel,
  readStoredModel,
  storeModel,
  gram,
  IMPLICIT_DEFAULTS,
  servedModel,
  trainAls,
  type ServedModel,
  seededRandom,
} from "../actors/sources/index.js";
import { storedAls1, storedAls2 } from "./helpers/als-legacy.js";

/**
 * A served ALS model keeps no user factors (als.ts ServedModel): its stored
 * form ("ALS3") is the settings, the item ids and the item factors V, whatever the number of
 * users, and a user's vector is solved from their row when asked. A model stored before, with
 * every user's factors ("ALS1": ids in the JSON header; "ALS2": ids packed; or either as base64
 * in `{ at, b64 }`), still restores: its U is skipped, V copied out of its bytes, the same
 * answers.
 */

// Ids of several shapes: ASCII, non-ASCII (UTF-8 of 2-4 bytes), one that a JSON header escapes.
const ids = (n: number) =>
  Array.from({ length: n }, (_, u) =>
    u % 7 === 3 ? `ü${u}-€` : u % 11 === 5 ? `q"\\${u}🙂` : `u${u}`,
  );

function trained(n: number) {
  const rand = seededRandom(3);
  const rows = createRatingsBuilder();
  const users = ids(n);
  for (let u = 0; u < n; u++)
    for (let i = 0; i < 6; i++) if (rand() < 0.5) rows.add(users[u]!, `i${(u + i * 3) % 40}`, 1);
  return { rows, model: trainAls(rows.build(), { ...IMPLICIT_DEFAULTS, rank: 8, iterations: 3 }) };
}

describe("ALS stored forms", () => {
  const { rows, model: m } = trained(300);
  const users = [...ids(300).filter((_, u) => u % 13 === 0), "nobody"];
  const answers = (s: ServedModel) => {
    const idx = createAlsIndex(s, rows);
    return users.map((u) => idx.candidates(u, 5));
  };
  const want = answers(servedModel(m));

  it("stores the served form: settings, items and V, not a byte per user", () => {
    expect(want.filter((a) => a.length > 0).length).toBeGreaterThan(10);
    const kept = storeModel(m, 42);
    const header = JSON.stringify({ settings: m.settings, users: 300, items: m.items }).length;
    // The bytes: magic, length, header, padding, V. Nothing grows with the users.
    expect(kept.stored.byteLength).toBeLessThanOrEqual(8 + header + 20 + 3 + m.V.byteLength);
    expect(kept.stored.byteLength).toBeLessThan(m.U.byteLength);
    expect(kept.model.users).toBe(m.users.length);
    expect("U" in kept.model).toBe(false);
    // The served V is a view on the stored bytes: one copy in memory.
    expect(kept.model.V.buffer).toBe(kept.stored.buffer);
    expect(answers(kept.model)).toEqual(want);
    const back = readStoredModel(kept.stored.slice(0));
    expect(back.at).toBe(42);
    expect(back.legacy).toBe(false);
    expect(answers(back.model)).toEqual(want);
    // At an offset that is not 4-byte aligned (a copy): the same.
    const odd = new Uint8Array(kept.stored.byteLength + 1);
    odd.set(kept.stored, 1);
    expect(answers(readStoredModel(odd.subarray(1)).model)).toEqual(want);
    expect(deserialiseModel(kept.stored.slice(0)).items).toEqual(m.items);
  });

  it("stores YᵀY when the model has it (the worker's), read back bit for bit, the same answers", () => {
    const k = m.settings.rank;
    const YtY = gram(m.V, k, m.settings.reg);
    const kept = storeModel({ ...servedModel(m), YtY }, 5);
    // V, then YᵀY 8-byte aligned: k × k doubles more than the form without it, and the
    // header's `"gram":true` and padding.
    const without = storeModel(m, 5).stored.byteLength;
    expect(kept.stored.byteLength).toBeGreaterThanOrEqual(without + 8 * k * k);
    expect(kept.stored.byteLength).toBeLessThan(without + 8 * k * k + 24);
    expect(kept.model.YtY!.buffer).toBe(kept.stored.buffer);
    const bits = (a: Float64Array | undefined) =>
      Buffer.from(a!.buffer, a!.byteOffset, a!.byteLength);
    for (const bytes of [
      kept.stored.slice(0),
      (() => {
        // At an offset that is not 8-byte aligned (copies).
        const odd = new Uint8Array(kept.stored.byteLength + 4);
        odd.set(kept.stored, 4);
        return odd.subarray(4);
      })(),
    ]) {
      const back = readStoredModel(bytes);
      expect(back.legacy).toBe(false);
      expect(bits(back.model.YtY).equals(bits(YtY))).toBe(true);
      expect(Array.from(back.model.V)).toEqual(Array.from(m.V));
      expect(answers(back.model)).toEqual(want);
    }
    // A form without it reads without it (computed at the first fold-in).
    expect(readStoredModel(storeModel(m, 5).stored.slice(0)).model.YtY).toBeUndefined();
  });

  for (const [name, make] of [
    ["ALS1", storedAls1],
    ["ALS2", storedAls2],
  ] as const)
    it(`restores a model stored with every user's factors (${name}), without them, same answers`, () => {
      const bytes = make(m, 7);
      const back = readStoredModel(bytes);
      expect(back.at).toBe(7);
      expect(back.legacy).toBe(true);
      expect(back.model.users).toBe(m.users.length);
      expect(back.model.items).toEqual(m.items);
      expect(Array.from(back.model.V)).toEqual(Array.from(m.V));
      // V is copied out: the old bytes (mostly U) are not kept alive by the served model.
      expect(back.model.V.buffer).not.toBe(bytes.buffer);
      expect(answers(back.model)).toEqual(want);
      const b64 = readStoredModel({ at: 9, b64: Buffer.from(bytes).toString("base64") });
      expect(b64.at).toBe(9);
      expect(b64.legacy).toBe(true);
      expect(answers(b64.model)).toEqual(want);
    });
});
