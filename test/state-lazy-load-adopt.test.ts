import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { createColdIndex, grownSize } from "../state/cold-index.js";
import { encodeSections } from "../state/sections.js";
import type { ValueCodec } from "../runtime/index.js";

/**
 * A restart's bulk load leaves a binary map's records pending (cold-index.ts, lazy adoptAll).
 * The first snapshot after it adopts its delta into the same index: when placing the delta's
 * first record places the last pending ones (a growth settles them all first, or the record's
 * bucket was the last one left), the index drops every buffer without a live record, which
 * must not include the delta's own buffer, whose records are being placed. It did: the keys
 * written pointed into a dropped buffer, then into whichever buffer next took its place.
 */

const section = (keys: string[], values: (string | undefined)[]) => {
  const { buf, at } = encodeSections([{ name: "m", keys, values }]);
  return { buf, start: at[0]!.start, end: at[0]!.end, count: at[0]!.count };
};
const text = (v: { buf: Buffer; start: number; end: number } | undefined) =>
  v && v.buf.toString("utf8", v.start, v.end);

/** Bytes of a JSON value: a codec map (stored form bytes), as interest-ranking's cells. */
const bytesCodec: ValueCodec<{ v: string }> = {
  encode: (x) => new TextEncoder().encode(JSON.stringify(x)),
  decode: (b) =>
    typeof b === "string"
      ? (JSON.parse(b) as { v: string })
      : (JSON.parse(new TextDecoder().decode(b as Uint8Array)) as { v: string }),
};

describe("a lazily loaded cold index adopting a delta", () => {
  it("keeps the delta's records whenever their placing finishes the pending ones", () => {
    for (let total = 1; total < 300; total++) {
      const keys = Array.from({ length: total }, (_, i) => `k${i}`);
      const c = createColdIndex();
      const steps = c.adoptAll(
        [
          section(
            keys,
            keys.map((k) => `"${k}"`),
          ),
        ],
        true,
      );
      while (steps.next().done !== true);
      const want = new Map(keys.map((k) => [k, `"${k}"`]));
      // One delta, then another: the second may take the first one's buffer slot.
      for (const [k, v] of [
        [`new`, `"new"`],
        [`other`, `"other"`],
      ] as const) {
        const d = section([k], [v]);
        c.adopt(d.buf, d.start, d.end);
        want.set(k, v);
      }
      const got = new Map([...keys, "new", "other"].map((k) => [k, text(c.get(k))]));
      expect(got, `${total} records loaded (table of ${grownSize(total)})`).toEqual(want);
    }
  });
});

describe("a stage's binary map after a restart, on LevelDB", () => {
  const dbs = testStateDb("reco-lazy-adopt-");

  for (const form of ["codec", "text"] as const) {
    it(`reads back the keys written after the restart (${form} map)`, async () => {
      const options = form === "codec" ? { codec: bytesCodec } : { text: true };
      const db = await dbs.open();
      const store = db.instance("stage", 0);
      // 12 keys: a load sizes the table at 16 slots (0.8 full), and the next key grows it.
      const first = await store.load();
      const m0 = first.map<{ v: string }>("cells", options);
      for (let i = 0; i < 12; i++) m0.set(`k${i}`, { v: `k${i}` });
      await store.write(first);

      const state = await store.load();
      const m = state.map<{ v: string }>("cells", options);
      m.set("new", { v: "new" });
      await store.write(state);
      m.set("other", { v: "other" });
      await store.write(state);
      // One more: "new" and "other" are clean now, read from their bytes.
      await store.write(state);
      expect([m.get("new"), m.get("other"), m.get("k3")]).toEqual([
        { v: "new" },
        { v: "other" },
        { v: "k3" },
      ]);
      const again = (await store.load()).map<{ v: string }>("cells", options);
      expect([again.get("new"), again.get("other")]).toEqual([{ v: "new" }, { v: "other" }]);
    });
  }
});
