import { describe, expect, it } from "vitest";
import { testStateDb } from "./helpers/state-db.js";
import { shelfView, type ModelShelf, type TrainFn } from "../actors/stages/index.js";
import { readStoredModel, trainAls } from "../actors/sources/index.js";
import { openModelShelf } from "../bin/pipeline/model-shelf.js";
import { recordMaker } from "./helpers/source-stages.js";
import {
  collaborativeLogic,
  flush,
  H,
  MODEL_MAP,
  modelAnswers,
  pushBatch,
  tastes,
  T0,
} from "./helpers/collaborative-logic.js";

/**
 * The trainer's served models are kept apart from its snapshot (a shelf), so that a restart
 * serves them before the trainer's state, with its copies of every partition's rows, has loaded.
 * A model on the shelf is the model of its point (training is seeded): a restored trainer takes
 * one newer than its own instead of training the point again, and the shelf's view answers as
 * the trainer does.
 */

function memoryShelf(): ModelShelf & { puts: number; bytes: Map<string, Uint8Array> } {
  const bytes = new Map<string, Uint8Array>();
  const shelf = {
    puts: 0,
    bytes,
    get: (kind: string) => bytes.get(kind),
    put(kind: string, stored: Uint8Array) {
      shelf.puts++;
      bytes.set(kind, stored);
    },
  };
  return shelf;
}

function countingTrain(): { train: TrainFn; trained: number[] } {
  const trained: number[] = [];
  return {
    trained,
    train: (ratings, settings) => {
      trained.push(ratings.users.length);
      return Promise.resolve(trainAls(ratings, settings));
    },
  };
}

describe("the collaborative trainer's model shelf", () => {
  const dbs = testStateDb("reco-shelf-");

  it("takes a newer model from the shelf at a restore instead of training its point again, and answers the same", async () => {
    const db = await dbs.open({ rawMinBytes: 64 });
    const store = db.instance("collaborative", 0);
    const shelf = memoryShelf();
    const rec = recordMaker();
    const first = countingTrain();
    const s = collaborativeLogic(first.train, await store.load(), 0, shelf);
    pushBatch(s, tastes(rec));
    // The snapshot before the training point.
    await store.write(s.state);
    const crossing = [rec("u0", "b0", T0 + H + 1)];
    pushBatch(s, crossing);
    await flush();
    expect(first.trained.length).toBe(1);
    const point = s.view.status().models.implicit!;
    expect(point).toBeGreaterThan(0);
    // Shelved as the trainer stored it.
    expect(shelf.bytes.get("implicit")).toBe(s.state.map(MODEL_MAP).get("implicit"));
    const want = modelAnswers(s.view);
    expect(want[0]!.length).toBeGreaterThan(0);

    // Killed before the next snapshot: the restart restores the one before the point.
    const again = countingTrain();
    const restored = await store.load();
    expect(restored.map(MODEL_MAP).get("implicit")).toBeUndefined();
    const s2 = collaborativeLogic(again.train, restored, 0, shelf);
    expect(s2.view.status().models.implicit).toBe(point);
    // Its own state holds the model from now on (the next snapshot writes it).
    expect(readStoredModel(restored.map(MODEL_MAP).get("implicit") as Uint8Array).at).toBe(point);
    // The replay reaches the point again: it is not trained twice, and nothing waits for it.
    pushBatch(s2, crossing);
    await flush();
    expect(again.trained).toEqual([]);
    expect(s2.view.training()).toBe(false);
    expect(s2.view.status()).toMatchObject({ trainAt: point, models: { implicit: point } });
    expect(modelAnswers(s2.view)).toEqual(want);

    // The shelf's view serves what the trainer serves.
    const view = shelfView({ ...s2.settings, shelf })!;
    expect(view.status().models).toEqual({ implicit: point });
    expect(modelAnswers(view)).toEqual(want);
  });

  it("fills a shelf that is behind the trainer's snapshot at a restore; an empty shelf serves nothing", async () => {
    const db = await dbs.open({ rawMinBytes: 64 });
    const store = db.instance("collaborative", 0);
    const rec = recordMaker();
    const s = collaborativeLogic(countingTrain().train, await store.load());
    pushBatch(s, tastes(rec));
    pushBatch(s, [rec("u0", "b0", T0 + H + 1)]);
    await flush();
    await store.write(s.state);
    const point = s.view.status().models.implicit!;

    const shelf = memoryShelf();
    expect(shelfView({ ...s.settings, shelf })).toBeUndefined();
    const again = countingTrain();
    const s2 = collaborativeLogic(again.train, await store.load(), 0, shelf);
    expect(shelf.puts).toBe(1);
    expect(readStoredModel(shelf.bytes.get("implicit")!).at).toBe(point);
    expect(modelAnswers(shelfView({ ...s2.settings, shelf })!)).toEqual(modelAnswers(s.view));
    expect(again.trained).toEqual([]);
  });

  it("keeps the newest model per kind in the state store across a reopen", async () => {
    let db = await dbs.open({ rawMinBytes: 64 });
    const shelf = await openModelShelf(db);
    expect(shelf.get("implicit")).toBeUndefined();
    const a = Uint8Array.from({ length: 300 }, (_, i) => i % 251);
    const b = Uint8Array.from({ length: 200 }, (_, i) => (i * 7) % 251);
    const c = Uint8Array.from({ length: 40 }, (_, i) => i);
    // Puts while a write is under way: the last one of each kind is what is kept.
    shelf.put("implicit", a);
    shelf.put("implicit", b);
    shelf.put("explicit", c);
    expect(shelf.get("implicit")).toBe(b);
    await shelf.settled();
    db = await dbs.open({ rawMinBytes: 64 });
    const reopened = await openModelShelf(db);
    expect([...reopened.get("implicit")!]).toEqual([...b]);
    expect([...reopened.get("explicit")!]).toEqual([...c]);
  });
});
