import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { createStageState } from "../state/store.js";
import { restored } from "../state/value-forms.js";
import { decodeRatingRow, type RatingRow } from "../actors/sources/index.js";
import { ratingRows } from "../actors/stages/index.js";
import type { CollaborativeView } from "../actors/stages/index.js";
import { recordMaker } from "./helpers/source-stages.js";
import {
  collaborativeLogic,
  flush,
  H,
  pushBatch,
  tastes,
  T0,
  trainNow,
} from "./helpers/collaborative-logic.js";

/**
 * The collaborative stage's rows (one per user) have a stored form (MessagePack bytes), so a
 * restart indexes their bytes instead of decoding every row before the blend can answer (1M
 * users: 33 MB as JSON text). On real LevelDB: rows come back as bytes and answer as before;
 * snapshots of the earlier layouts (rows as parsed JSON values, rows as JSON text) load too, and
 * their rows move to bytes as they are written.
 */

const asked = ["u0", "u3", "v1", "v5", "new"];
const answers = (v: CollaborativeView) => asked.map((u) => v.collaborative().candidates(u, 4));

describe("collaborative rows on LevelDB", () => {
  const dbs = testStateDb("reco-collab-");

  it("load as bytes and answer as before; rows of the earlier layout load and move to bytes", async () => {
    const db = await dbs.open();
    const rec = recordMaker();
    const events = tastes(rec);
    const state = await db.instance("collaborative", 0).load();
    const s = collaborativeLogic(trainNow, state);
    pushBatch(s, events);
    pushBatch(s, [rec("u0", "b0", T0 + H + 1)]); // a training point
    await flush(); // its model
    pushBatch(s, [rec("new", "a1", T0 + H + 2), rec("v1", "a2", T0 + H + 3)]); // folded in
    const want = answers(s.view);
    expect(want[0]!.length).toBeGreaterThan(0);
    await db.instance("collaborative", 0).write(state);

    // Restarted: the rows are bytes until read (no other map of this stage has a stored form).
    const loaded = await db.instance("collaborative", 0).load();
    expect(loaded.coldBytes()).toBeGreaterThan(0);
    expect(answers(collaborativeLogic(trainNow, loaded).view)).toEqual(want);

    // The earlier layout: every map's values parsed, written as JSON (as before rows had a
    // stored form).
    const old = createStageState();
    for (const [name, entries] of state.allMaps())
      for (const [k, v] of entries)
        old.map(name).set(k, name === "user-rows" ? decodeRatingRow(restored(v)) : v);
    old.meta = state.meta;
    await db.instance("collaborative", 1).write(old);
    const fromOld = await db.instance("collaborative", 1).load();
    expect(fromOld.coldBytes()).toBe(0);
    const s2 = collaborativeLogic(trainNow, fromOld);
    expect(answers(s2.view)).toEqual(want);
    // Its next snapshot writes the rows as bytes.
    await db.instance("collaborative", 1).write(fromOld);
    const moved = await db.instance("collaborative", 1).load();
    expect(moved.coldBytes()).toBeGreaterThan(0);
    expect(answers(collaborativeLogic(trainNow, moved).view)).toEqual(want);
  });

  it("reads rows stored as JSON text (before they were bytes) and writes them as bytes next", async () => {
    const db = await dbs.open();
    const rows: [string, RatingRow][] = [
      ["u0", [0, 49, "a0", 1, "a1", 0.1 + 0.2]],
      ["u1", [1, 50, "b0", 5]],
      ["u2", [2, 51, "a0", -2.5e-7, "c\u00e9", 3]],
    ];
    const text = createStageState();
    const t = text.map<RatingRow>("user-rows", { text: true });
    for (const [u, row] of rows) t.set(u, row);
    const store = db.instance("collaborative", 0);
    await store.write(text);
    // Once loaded (cold JSON text), once more after a snapshot with the text still cold.
    const loaded = await store.load();
    const m = ratingRows(loaded, "user-rows");
    expect([...m.entries()]).toEqual(rows);
    expect(m.get("u2")).toEqual(rows[2]![1]);
    m.set("u1", [1, 60, "b0", 5, "b1", 1]);
    await store.write(loaded);
    const again = await store.load();
    const want = [rows[0]!, ["u1", [1, 60, "b0", 5, "b1", 1]], rows[2]!];
    expect([...ratingRows(again, "user-rows").entries()]).toEqual(want);
    // The written row is bytes now; the others stay as they were stored until written.
    const stored = new Map(
      [...again.allMaps()].flatMap(([name, e]) => (name === "user-rows" ? [...e] : [])),
    );
    expect(String(stored.get("u1")).startsWith("\u0000b64:")).toBe(true);
    expect(decodeRatingRow(restored(stored.get("u1")))).toEqual(want[1]![1]);
  });
});
