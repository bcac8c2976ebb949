import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { testStateDb } from "./helpers/state-db.js";
import { openSnapshotArchive } from "../state/archive.js";
import type { TrainFn } from "../actors/stages/index.js";
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
 * Lease hand-over moves a unit's snapshots through the archive (a JetStream
 * object store, state/archive.ts) as logical entries, byte values as base64 in gzipped JSON. The
 * collaborative instance's model travels in the served form (item factors, no user factors),
 * also when its snapshot held a model stored before with every user's factors: that restores on
 * the other side with the same answers and is rewritten in the served form there.
 */

const answers = modelAnswers;
/** The model's bytes in an archived snapshot's entries (persisted: "\0b64:" + base64). */
function archivedModel(entries: [string, unknown][]): Uint8Array {
  const v = entries.find(([k]) => k === "trainer.trained-model\u0000implicit")?.[1];
  expect(typeof v).toBe("string");
  const text = v as string;
  expect(text.startsWith("\u0000b64:")).toBe(true);
  return new Uint8Array(Buffer.from(text.slice(5), "base64"));
}

describe("collaborative model through the snapshot archive", () => {
  const dbs = testStateDb("reco-collab-archive-");
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc.close();
    await nats.cleanup();
  });

  it("archives the served form; an archive holding the earlier form restores, same answers, and is rewritten", async () => {
    const db = await dbs.open({ rawMinBytes: 64 });
    const archive = await openSnapshotArchive(nc);
    const rec = recordMaker();
    const full: AlsModel[] = [];
    const train: TrainFn = (ratings, settings) => {
      const m = trainAls(ratings, settings);
      full.push(m);
      return Promise.resolve(m);
    };
    const state = await db.instance("collaborative", 0).load();
    const s = collaborativeLogic(train, state);
    pushBatch(s, tastes(rec));
    pushBatch(s, [rec("u0", "b0", T0 + H + 1)]); // a training point
    await flush();
    const point = s.view.status().models.implicit!;
    const want = answers(s.view);
    expect(want[0]!.length).toBeGreaterThan(0);
    state.meta = { seq: 100 };
    await db.instance("collaborative", 0).write(state);

    // Archived and restored elsewhere: the served form, the same answers.
    await archive.put("collaborative", 0, await db.instance("collaborative", 0).exportRaw());
    const got = (await archive.get("collaborative", 0))!;
    const served = archivedModel(got.entries);
    expect(readStoredModel(served).legacy).toBe(false);
    // The bytes the stage holds (header and V), not the model as trained (its U and user ids).
    const held = state.map(MODEL_MAP).get("implicit") as Uint8Array;
    expect(Buffer.from(served).equals(Buffer.from(held))).toBe(true);
    expect(served.byteLength).toBeLessThan(storedAls2(full[0]!, point).byteLength);
    await db.instance("collaborative", 1).importRaw(got);
    const there = collaborativeLogic(train, await db.instance("collaborative", 1).load());
    expect(there.view.status().models.implicit).toBe(point);
    expect(answers(there.view)).toEqual(want);

    // An archive written before: the model with every user's factors ("ALS2").
    const legacy = storedAls2(full[0]!, point);
    const old = await db.instance("collaborative", 0).load();
    old.map(MODEL_MAP).set("implicit", legacy);
    await db.instance("collaborative", 0).write(old);
    await archive.put("collaborative", 0, await db.instance("collaborative", 0).exportRaw());
    const before = (await archive.get("collaborative", 0))!;
    expect(readStoredModel(archivedModel(before.entries)).legacy).toBe(true);
    await db.instance("collaborative", 2).importRaw(before);
    const restored = await db.instance("collaborative", 2).load();
    const s2 = collaborativeLogic(train, restored);
    expect(answers(s2.view)).toEqual(want);
    // Its next snapshot, and so its next upload, holds the served form.
    await db.instance("collaborative", 2).write(restored);
    await archive.put("collaborative", 2, await db.instance("collaborative", 2).exportRaw());
    const next = archivedModel((await archive.get("collaborative", 2))!.entries);
    expect(readStoredModel(next).legacy).toBe(false);
    expect(next.byteLength).toBeLessThan(legacy.byteLength);
    expect(full.length).toBe(1);
  });
});
