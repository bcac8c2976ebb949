import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import type { StageStateInternal } from "../state/stage-state.js";
import { ratingRows } from "../actors/stages/index.js";
import {
  createRatingsBuilder,
  type RatingRow,
  memStore,
  seededRandom,
} from "../actors/sources/index.js";

/**
 * The collaborative stage's rating rows are stored as MessagePack (cold rows are bytes)
 * whose training scans peek, leaving them bytes. The matrices, rows and points must be those of a builder
 * on plain Maps, after any mix of adds, marks, snapshots and restarts on real LevelDB, and from a
 * snapshot of the earlier layout (rows as a plain JSON map).
 */
describe("rating rows as bytes", () => {
  const dbs = testStateDb("reco-rows-");

  const run = async (legacy: boolean) => {
    let db = await dbs.open({ checkpointMinKeys: 300 });
    const random = seededRandom(legacy ? 3 : 9);
    const model = createRatingsBuilder({ rows: memStore(), items: memStore(), marked: memStore() });
    const modelRows = (model as unknown as { row(u: string): ReadonlyMap<string, number> }).row;
    let at = 0;
    const add = (b: { add: typeof model.add }, u: string, i: string, v: number, replace: boolean) =>
      b.add(u, i, v, replace, at);
    const events: [string, string, number, boolean][] = [];
    const next = (): [string, string, number, boolean] => [
      `u${Math.floor(random() * 150)}`,
      `p${Math.floor(random() * 40)}`,
      random() < 0.5 ? 1 + Math.floor(random() * 5) : Math.floor(random() * 10) / 2 + 0.1,
      random() < 0.3,
    ];
    if (legacy) {
      // The earlier layout: rows and items in plain maps (JSON values).
      const old = await db.instance("collaborative", 0).load();
      const b = createRatingsBuilder({
        rows: old.map<RatingRow>("rows"),
        items: old.map<number>("items"),
        marked: old.map("marked"),
      });
      for (let x = 0; x < 400; x++) {
        const e = next();
        at++;
        add(b, ...e);
        add(model, ...e);
        events.push(e);
      }
      await db.instance("collaborative", 0).write(old);
    }
    let store = db.instance("collaborative", 0);
    let state: StageStateInternal = await store.load();
    const open = () =>
      createRatingsBuilder({
        rows: ratingRows(state, "rows"),
        items: state.map<number>("items"),
        marked: state.map("marked"),
      });
    let b = open();
    const same = () => {
      expect(b.build()).toEqual(model.build());
      expect(b.marks()).toEqual(model.marks());
      for (const c of model.marks()) expect(b.buildAt(c)).toEqual(model.buildAt(c));
      expect(b.nnz).toBe(model.nnz);
      for (let x = 0; x < 150; x += 7) {
        expect(b.row(`u${x}`)).toEqual(modelRows(`u${x}`));
        expect(b.changedAt(`u${x}`)).toBe(model.changedAt(`u${x}`));
      }
    };
    same();
    for (let step = 0; step < 25; step++) {
      for (let x = 0; x < 60; x++) {
        const e = next();
        at++;
        add(b, ...e);
        add(model, ...e);
      }
      if (step % 5 === 1 || step % 5 === 2) {
        b.mark(step);
        model.mark(step);
      } else if (step % 5 === 3) {
        b.dropBefore(step);
        model.dropBefore(step);
      }
      same();
      await store.write(state);
      if (step % 7 === 3) {
        db = await dbs.open({ checkpointMinKeys: 300 });
        store = db.instance("collaborative", 0);
        state = await store.load();
        b = open();
        same();
      }
    }
    await store.write(state);
    return state;
  };

  it("build the matrices a builder on plain Maps builds, across marks, snapshots and restarts", async () => {
    await run(false);
  });

  it("load a snapshot of plain rows and move them to bytes", async () => {
    const state = await run(true);
    expect(state.coldBytes()).toBeGreaterThan(0);
  });
});
