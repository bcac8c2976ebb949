import { describe, expect, it } from "vitest";
import { createIntPairs, createPackedKeys } from "../actors/stages/index.js";
import { seededRandom } from "../actors/sources/index.js";

/**
 * Interest-ranking holds its packed users' aggregates in typed arrays
 * (actors/stages/packed-keys.ts) instead of a Map. It must answer as a Map does through growth,
 * deletions and the compactions they cause, for any key.
 */
describe("packed keys", () => {
  it("answer as a Map after any mix of sets and deletes", () => {
    const random = seededRandom(21);
    const table = createPackedKeys();
    const model = new Map<string, number>();
    const key = (i: number) =>
      i % 11 === 0 ? `ü${i}-é` : i % 7 === 0 ? `k${i}${"x".repeat(300)}` : `u${i}`;
    const wrong: string[] = [];
    for (let round = 0; round < 6; round++) {
      // Rounds that mostly add, then rounds that mostly delete (compactions).
      const adding = round % 3 !== 2;
      for (let x = 0; x < 40_000; x++) {
        const k = key(Math.floor(random() * 30_000));
        const r = random();
        if (r < (adding ? 0.6 : 0.2)) {
          const v = Math.floor(random() * 2 ** 31);
          table.set(k, v);
          model.set(k, v);
        } else if (r < (adding ? 0.75 : 0.9)) {
          if (table.delete(k) !== model.delete(k)) wrong.push(`delete ${k}`);
        } else if (table.get(k) !== model.get(k)) wrong.push(`get ${k}`);
      }
      expect(table.size).toBe(model.size);
      for (let i = 0; i < 30_000; i++)
        if (table.get(key(i)) !== model.get(key(i))) wrong.push(key(i));
      expect(wrong).toEqual([]);
    }
    for (const k of [...model.keys()]) table.delete(k);
    expect(table.size).toBe(0);
    expect(table.get("u1")).toBeUndefined();
    table.set("", 0);
    expect(table.get("")).toBe(0);
  });

  it("int pairs hold what was set, reuse freed slots and grow", () => {
    const random = seededRandom(8);
    const pairs = createIntPairs();
    const model = new Map<number, [number, number]>();
    let maxSlot = -1;
    let peak = 0;
    for (let x = 0; x < 20_000; x++) {
      const r = random();
      const a = Math.floor(random() * 2 ** 32) - 2 ** 31;
      const b = Math.floor(random() * 2 ** 32) - 2 ** 31;
      const held = [...model.keys()];
      if (r < 0.5 || held.length === 0) {
        const slot = pairs.add(a, b);
        expect(model.has(slot)).toBe(false);
        model.set(slot, [a, b]);
        maxSlot = Math.max(maxSlot, slot);
        peak = Math.max(peak, model.size);
      } else {
        const slot = held[Math.floor(random() * held.length)]!;
        if (r < 0.8) {
          pairs.free(slot);
          model.delete(slot);
        } else {
          pairs.set(slot, a, b);
          model.set(slot, [a, b]);
        }
      }
      if (x % 1000 === 0)
        for (const [slot, [p, q]] of model)
          expect([pairs.first(slot), pairs.second(slot)]).toEqual([p, q]);
    }
    expect(pairs.size).toBe(model.size);
    // Freed slots are handed out again: never more slots than were held at once.
    expect(maxSlot).toBe(peak - 1);
  });
});
