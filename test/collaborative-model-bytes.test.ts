import { describe, expect, it } from "vitest";
import type { StageStateInternal } from "../state/index.js";
import { testStateDb } from "./helpers/state-db.js";
import type { CollaborativeView, TrainFn } from "../actors/stages/index.js";
import { readStoredModel, trainAls, type AlsModel } from "../actors/sources/index.js";
import { recordMaker } from "./helpers/source-stages.js";
import { storedAls2 } from "./helpers/als-legacy.js";
import {
  collaborativeLogic,
  MODEL_MAP,
  flush,
  H,
  modelAnswers,
  pushBatch,
  tastes,
  T0,
} from "./helpers/collaborative-logic.js";

/**
 * A trained ALS model is held once, and without user factors. The stage
 * keeps the served form's bytes (item factors: als.ts ServedModel) in its state and the served
 * factors are views on them, across a snapshot and restart on real LevelDB. A snapshot of an
 * earlier form (`{ at, b64 }`, or the bytes with every user's factors) still restores the same
 * answers, and the next snapshot holds the served form instead.
 */

const answers = modelAnswers;
/** The served model's factors are views on the bytes the state holds for it. */
function heldOnce(state: StageStateInternal, v: CollaborativeView): void {
  const stored = state.map(MODEL_MAP).get("implicit");
  expect(stored).toBeInstanceOf(Uint8Array);
  expect(readStoredModel(stored as Uint8Array).legacy).toBe(false);
  const served = v.collaborative().model("implicit")!.model;
  expect("U" in served).toBe(false);
  expect(served.V.buffer).toBe((stored as Uint8Array).buffer);
}

describe("collaborative model held once", () => {
  const dbs = testStateDb("reco-collab-model-");

  it("keeps the served model's bytes in its state with its factors as views on them, across a restart; an earlier form restores and is replaced", async () => {
    // The model as a raw entry (state/raw-values.ts), as a large model is: the served factors
    // are views on the bytes LevelDB gave the load.
    const db = await dbs.open({ rawMinBytes: 64 });
    const rec = recordMaker();
    const events = tastes(rec);
    const full: AlsModel[] = [];
    const train: TrainFn = (ratings, settings) => {
      const m = trainAls(ratings, settings);
      full.push(m);
      return Promise.resolve(m);
    };
    const state = await db.instance("collaborative", 0).load();
    const s = collaborativeLogic(train, state);
    pushBatch(s, events);
    pushBatch(s, [rec("u0", "b0", T0 + H + 1)]); // a training point
    await flush(); // its model
    const point = s.view.status().models.implicit!;
    expect(point).toBeGreaterThan(0);
    const want = answers(s.view);
    expect(want[0]!.length).toBeGreaterThan(0);
    heldOnce(state, s.view);
    await db.instance("collaborative", 0).write(state);

    const loaded = await db.instance("collaborative", 0).load();
    const s2 = collaborativeLogic(train, loaded);
    expect(s2.view.status().models.implicit).toBe(point);
    expect(answers(s2.view)).toEqual(want);
    heldOnce(loaded, s2.view);

    // Snapshots written before: the model with every user's factors, as raw bytes ("ALS2") or
    // as { at, b64 } of such bytes, restore the same answers; the restore replaces the key's
    // value by the served form, which the next snapshot writes (and a load then reads).
    const legacy = storedAls2(full[0]!, point);
    let last = loaded;
    for (const old of [legacy, { at: point, b64: Buffer.from(legacy).toString("base64") }]) {
      last.map(MODEL_MAP).set("implicit", old);
      await db.instance("collaborative", 0).write(last);
      const restored = await db.instance("collaborative", 0).load();
      expect(readStoredModel(restored.map(MODEL_MAP).get("implicit") as never).legacy).toBe(true);
      const s3 = collaborativeLogic(train, restored);
      expect(s3.view.status().models.implicit).toBe(point);
      expect(answers(s3.view)).toEqual(want);
      heldOnce(restored, s3.view);
      await db.instance("collaborative", 0).write(restored);
      const again = await db.instance("collaborative", 0).load();
      const stored = again.map(MODEL_MAP).get("implicit") as Uint8Array;
      expect(readStoredModel(stored).legacy).toBe(false);
      expect(stored.byteLength).toBeLessThan(legacy.byteLength);
      expect(answers(collaborativeLogic(train, again).view)).toEqual(want);
      last = again;
    }
    // No training was needed for any of it: the one of the point, before the first snapshot.
    expect(full.length).toBe(1);
  });
});
