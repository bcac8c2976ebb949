import { describe, expect, it } from "vitest";
import type { StageStateInternal } from "../state/index.js";
import { testStateDb } from "./helpers/state-db.js";
import type { CollaborativeView } from "../actors/collaborative-stage.js";
import { serialiseModel } from "../actors/sources/als-model.js";
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
 * Issue 16 point 3: a trained ALS model's factors are held once. The stage kept the model in its
 * state as base64 text ({ at, b64 }) beside the served model's Float32Arrays: 1.37x the factors'
 * bytes again (342 MB at 1M users, rank 64) for as long as the model served. Now the state holds
 * the model's bytes and the served factors are views on them, across a snapshot and restart on
 * real LevelDB; a snapshot of the earlier form still restores the same model.
 */

const asked = ["u0", "u3", "v1", "v5"];
const answers = (v: CollaborativeView) => asked.map((u) => v.collaborative().candidates(u, 4));
/** The served model's factors are views on the bytes the state holds for it. */
function heldOnce(state: StageStateInternal, v: CollaborativeView): void {
  const stored = state.map("model").get("implicit");
  expect(stored).toBeInstanceOf(Uint8Array);
  const served = v.collaborative().model("implicit")!.model;
  expect(served.U.buffer).toBe((stored as Uint8Array).buffer);
  expect(served.V.buffer).toBe((stored as Uint8Array).buffer);
}

describe("collaborative model held once", () => {
  const dbs = testStateDb("reco-collab-model-");

  it("keeps the model's bytes in its state with the served factors as views on them, across a restart", async () => {
    // The model (640 bytes) as a raw entry (state/raw-values.ts), as a model of many users is:
    // the served factors are views on the bytes LevelDB gave the load.
    const db = await dbs.open({ rawMinBytes: 256 });
    const rec = recordMaker();
    const events = tastes(rec);
    const state = await db.instance("collaborative", 0).load();
    const s = collaborativeLogic(trainNow, state);
    pushBatch(s, events);
    pushBatch(s, [rec("u0", "b0", T0 + H + 1)]); // a training point
    await flush(); // its model
    const point = s.view.status().models.implicit;
    expect(point).toBeGreaterThan(0);
    const want = answers(s.view);
    expect(want[0]!.length).toBeGreaterThan(0);
    heldOnce(state, s.view);
    await db.instance("collaborative", 0).write(state);

    const loaded = await db.instance("collaborative", 0).load();
    const s2 = collaborativeLogic(trainNow, loaded);
    expect(s2.view.status().models.implicit).toBe(point);
    expect(answers(s2.view)).toEqual(want);
    heldOnce(loaded, s2.view);

    // A snapshot written before: the model as { at, b64 } restores the same model and answers.
    const old = await db.instance("collaborative", 1).load();
    for (const [name, entries] of loaded.allMaps())
      for (const [k, v] of entries) if (name !== "model") old.loadMapEntry(name, k, v);
    const model = s.view.collaborative().model("implicit")!.model;
    old.map("model").set("implicit", {
      at: point,
      b64: Buffer.from(serialiseModel(model)).toString("base64"),
    });
    old.meta = loaded.meta;
    await db.instance("collaborative", 1).write(old);
    const s3 = collaborativeLogic(trainNow, await db.instance("collaborative", 1).load());
    expect(s3.view.status().models.implicit).toBe(point);
    expect(answers(s3.view)).toEqual(want);
  });
});
