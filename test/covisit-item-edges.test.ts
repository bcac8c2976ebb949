import { describe, expect, it } from "vitest";
import {
  createCovisit,
  memCovisitStores,
  createItemIds,
  ItemEdges,
  itemEdgesCodec,
  decodeNeighbours,
  encodeNeighbours,
  type Edge,
  ECOMMERCE,
  seededRandom,
  type SourceEvent,
} from "../actors/sources/index.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStageState, openStateDb, type StageState } from "../state/index.js";

/**
 * Co-visitation's live neighbour lists are typed arrays keyed by item numbers
 * (actors/sources/item-edges.ts) and `add` holds the lists it changes between flushes. Answers
 * must be the bits the Map form gave, through snapshots (values back to bytes), reloads and pruning.
 */
const T0 = Date.UTC(2026, 10, 1);

function events(n: number, seed: number): SourceEvent[] {
  const rnd = seededRandom(seed);
  const types = ["view", "view", "view", "cart", "purchase"] as const;
  const out: SourceEvent[] = [];
  let ts = T0;
  for (let x = 0; x < n; x++) {
    ts += Math.floor(rnd() * 90_000);
    // A skewed item choice, so that hot items' lists fill up and get pruned (k = 4 below).
    const item = Math.floor(Math.pow(rnd(), 2) * 60);
    out.push({
      u: `u${Math.floor(rnd() * 25)}`,
      i: `p${item}`,
      t: types[Math.floor(rnd() * types.length)]!,
      ts,
      c: "",
      r: -1,
    });
  }
  return out;
}

describe("ItemEdges (co-visitation's live neighbour lists)", () => {
  it("finds, appends, grows and keeps entries as a Map of the same entries would", () => {
    const ids = createItemIds();
    const m = new ItemEdges(ids);
    const model = new Map<number, Edge>();
    const rnd = seededRandom(7);
    for (let step = 0; step < 3000; step++) {
      const b = Math.floor(rnd() * 400);
      const x = m.find(b);
      expect(x >= 0).toBe(model.has(b));
      if (x < 0) {
        m.push(b, rnd(), step);
        model.set(b, [m.sOf(m.size - 1), step]);
      }
      if (m.size > 120) {
        const keep = new Uint8Array(m.size);
        for (let y = 0; y < m.size; y++) {
          keep[y] = rnd() < 0.4 ? 1 : 0;
          if (!keep[y]) model.delete(m.keyOf(y));
        }
        m.retain(keep);
      }
    }
    expect(m.size).toBe(model.size);
    for (const [b, e] of model) {
      const x = m.find(b);
      expect(x).toBeGreaterThanOrEqual(0);
      expect([m.sOf(x), m.tsOf(x)]).toEqual(e);
    }
    expect(m.find(10_000)).toBe(-1);
  });

  it("is stored as neighbours.ts's bytes, and either form reads what the other wrote", () => {
    const ids = createItemIds();
    const m = new ItemEdges(ids);
    for (const [x, id] of ["a", "商品", "", "1004856"].entries())
      m.push(ids.idOf(id), Math.PI * (x + 1) * 1e-7 + 1 / 3, T0 + x * 1234.5);
    const bytes = m.toBytes();
    expect([...decodeNeighbours(bytes)]).toEqual(m.toJSON());
    const other = createItemIds();
    other.idOf("zz"); // different numbers: the ids, not the numbers, are stored
    const back = itemEdgesCodec(other).decode(encodeNeighbours(decodeNeighbours(bytes)));
    expect(back.toJSON()).toEqual(m.toJSON());
    expect(itemEdgesCodec(other).decode(JSON.stringify(m)).toJSON()).toEqual(m.toJSON());
  });
});

describe("co-visitation on a stage's state (item numbers, held lists)", () => {
  /** Every item's similar list and candidates from a few seeds, as JSON (bits of the doubles). */
  const answers = (c: ReturnType<typeof createCovisit>, now: number) =>
    JSON.stringify([
      ...Array.from({ length: 60 }, (_, x) => c.similar(`p${x}`, now, 10)),
      c.candidates(
        [
          { item: "p0", score: 3, why: "" },
          { item: "p7", score: 1, why: "" },
        ],
        now,
        20,
      ),
    ]);

  it("answers the bits of a memory-only instance, across snapshots, reloads and flushes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-ie-"));
    try {
      const db = await openStateDb(join(dir, "state"));
      const store = db.instance("covisit", 0);
      const evs = events(4000, 11);
      const opts = { preset: ECOMMERCE, k: 4 };
      const ref = createCovisit(opts, memCovisitStores());
      const open = (st: StageState) => {
        const ids = createItemIds();
        return createCovisit(opts, {
          edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
          ids,
          mass: st.map("mass"),
          recent: st.map("recent", { text: true }),
        });
      };
      let state = createStageState();
      let c = open(state);
      for (const [x, e] of evs.entries()) {
        ref.add(e);
        c.add(e);
        // A flush after some "batches" (reads in between see the held lists), and before each
        // snapshot (clean lists go back to their stored form), written through LevelDB.
        if (x % 97 === 0) c.flush();
        if (x % 250 === 249) {
          c.flush();
          await store.write(state);
        }
        if (x % 1000 === 999) {
          // A restart from that snapshot: a fresh instance on the loaded state.
          expect(answers(c, e.ts)).toBe(answers(ref, e.ts));
          state = await store.load();
          c = open(state);
        }
        if (x % 333 === 0) expect(answers(c, e.ts)).toBe(answers(ref, e.ts));
      }
      const end = evs[evs.length - 1]!.ts + 60_000;
      expect(answers(c, end)).toBe(answers(ref, end));
      expect(answers(ref, end)).toContain("together with");
      await db.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
