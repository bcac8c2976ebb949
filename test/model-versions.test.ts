import { describe, expect, it } from "vitest";
import { createModelVersions, type ModelVersion } from "../actors/quality/index.js";
import { IMPLICIT_DEFAULTS, type AlsModel } from "../actors/sources/index.js";

/** Each trained model's version, time and data position, kept across a restart. */
const model = (users: number): AlsModel => ({
  settings: IMPLICIT_DEFAULTS,
  users: Array.from({ length: users }, (_, x) => `u${x}`),
  items: ["a", "b"],
  U: new Float32Array(0),
  V: new Float32Array(0),
});

describe("model versions", () => {
  it("numbers each trained model, with its data position, event time and training time, and keeps them in the store", () => {
    const store = new Map<string, ModelVersion>();
    let now = 1000;
    const v = createModelVersions(store, () => now);
    v.submitted("implicit", 500, 1_570_000_000_000);
    now = 4000;
    v.trained("implicit", 500, model(3));
    v.submitted("implicit", 900, 1_570_000_360_000);
    now = 9000;
    v.trained("implicit", 900, model(5));
    v.trained("implicit", 900, model(5)); // the same point again (a restart's retraining): no new version
    expect(v.list().map((x) => [x.version, x.dataPosition, x.users])).toEqual([
      [2, 900, 5],
      [1, 500, 3],
    ]);
    expect(v.list()[1]).toMatchObject({
      eventTime: 1_570_000_000_000,
      submittedAt: 1000,
      trainedAt: 4000,
    });
    // A restart: a new instance on the same (reloaded) store goes on from version 2.
    const store2 = new Map<string, ModelVersion>(JSON.parse(JSON.stringify([...store])));
    const again = createModelVersions(store2, () => 12_000);
    again.trained("implicit", 1400, {
      ...model(7),
      offline: { users: 500, k: 10, hitRate: 0.31, ndcg: 0.17, ms: 40 },
    });
    expect(again.list().map((x) => x.version)).toEqual([3, 2, 1]);
    // The offline metrics are kept with the version, through a reload too.
    const reloaded = createModelVersions(new Map(JSON.parse(JSON.stringify([...store2]))));
    expect(reloaded.list()[0]!.offline).toEqual({
      users: 500,
      k: 10,
      hitRate: 0.31,
      ndcg: 0.17,
      ms: 40,
    });
  });

  it("keeps the newest 50 per kind", () => {
    const v = createModelVersions(new Map<string, ModelVersion>());
    for (let at = 1; at <= 60; at++) v.trained("implicit", at, model(1));
    const list = v.list();
    expect(list).toHaveLength(50);
    expect(Math.min(...list.map((x) => x.version))).toBe(11);
  });
});
