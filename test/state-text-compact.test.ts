import { describe, expect, it } from "vitest";
import { createStageState } from "../state/store.js";

/**
 * A text map's values go back to their JSON text at a snapshot (one string
 * instead of an object graph: the profiles were ~1/3 of the heap at 100k users), and are parsed
 * again when next read; a value written since the previous snapshot stays an object until a
 * snapshot finds it unwritten (parsing hot keys after every snapshot was ~10% of step 2's CPU).
 * What a stage reads is unchanged.
 */
describe("text maps between snapshots", () => {
  it("holds text once a snapshot finds a value unwritten since the previous one", () => {
    const state = createStageState();
    const profiles = state.map<{ top: [string, number][] }>("profile", { text: true });
    const written = { top: [["books", 2] as [string, number]] };
    profiles.set("u1", written);
    expect(profiles.get("u1")).toBe(written); // dirty: the object as set
    const delta = state.takeDelta();
    expect(delta.maps).toEqual([["profile", ["u1", JSON.stringify(written)], []]]);
    // Written since the previous snapshot: still the object (a hot key is not parsed again
    // after every snapshot), and clean.
    expect(profiles.get("u1")).toBe(written);
    expect(state.dirtyCount()).toBe(0);
    // The next snapshot finds it unwritten: back to text, without writing it.
    expect(state.takeDelta().size).toBe(0);
    const read = profiles.get("u1")!;
    expect(read).toEqual(written);
    expect(read).not.toBe(written);
    // Read again before the next snapshot: the same parsed object, and nothing dirty.
    expect(profiles.get("u1")).toBe(read);
    expect(state.dirtyCount()).toBe(0);
    // The next snapshot keeps a value read in the interval parsed for one more (a user who
    // keeps asking is not parsed again every snapshot), without writing it ...
    expect(state.takeDelta().size).toBe(0);
    expect(profiles.get("u1")).toBe(read);
    expect(state.takeDelta().size).toBe(0);
    expect(profiles.get("u1")).toBe(read);
    // ... and an interval without a read puts it back to text.
    expect(state.takeDelta().size).toBe(0);
    expect(state.takeDelta().size).toBe(0);
    const again = profiles.get("u1")!;
    expect(again).toEqual(written);
    expect(again).not.toBe(read);
    expect(state.dirtyCount()).toBe(0);
  });

  it("keeps a key written between every two snapshots an object, and writes its newest value", () => {
    const state = createStageState();
    const m = state.map<{ n: number }>("m", { text: true });
    for (let n = 1; n <= 3; n++) {
      const v = m.get("k") ?? { n: 0 };
      expect(v.n).toBe(n - 1);
      const next = { n };
      m.set("k", next);
      expect(state.takeDelta().maps).toEqual([["m", ["k", JSON.stringify(next)], []]]);
      expect(m.get("k")).toBe(next);
    }
  });

  it("writes a value set after a read, and deletes one deleted after a read", () => {
    const state = createStageState();
    const m = state.map<{ n: number }>("m", { text: true });
    state.loadMapEntry("m", "a", JSON.stringify({ n: 1 }));
    state.loadMapEntry("m", "b", JSON.stringify({ n: 2 }));
    expect(m.get("a")).toEqual({ n: 1 });
    m.set("a", { n: 3 });
    expect(m.get("b")).toEqual({ n: 2 });
    m.delete("b");
    expect(state.takeDelta().maps).toEqual([["m", ["a", '{"n":3}'], ["b"]]]);
    expect(m.get("a")).toEqual({ n: 3 });
    expect(m.has("b")).toBe(false);
    expect([...m.entries()]).toEqual([["a", { n: 3 }]]);
  });
});
