import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { createStageState } from "../state/store.js";
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
 * The collaborative stage's rows (one per user) are a text map, so a restart
 * indexes their bytes instead of parsing every row before the blend can answer (1M users: 33 MB
 * of JSON). On real LevelDB: rows come back as bytes and answer as before; a snapshot of the
 * earlier layout (rows as parsed JSON values) loads too, and moves to bytes at its next snapshot.
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

    // The earlier layout: every map's values parsed, written as JSON (as before rows were text).
    const old = createStageState();
    for (const [name, entries] of state.allMaps())
      for (const [k, v] of entries)
        old.map(name).set(k, name === "user-rows" && typeof v === "string" ? JSON.parse(v) : v);
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
});
