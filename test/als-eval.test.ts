import { describe, expect, it } from "vitest";
import {
  evaluateAls,
  createRatingsBuilder,
  IMPLICIT_DEFAULTS,
  trainAls,
  type AlsModel,
  trainInWorker,
  seededRandom,
} from "../actors/sources/index.js";

/**
 * A trained model's offline metrics, HR@10 and NDCG@10 on a held-out slice of
 * its training data, computed in the training worker. A matrix with structure (users in 8 groups,
 * each group touching its own 30 of 240 items) is learnable: a held-out item of the user's group
 * ranks in the top 10 among ~230 others far more often than chance (10/230).
 */
function groupedRatings(users = 400) {
  const b = createRatingsBuilder();
  const rand = seededRandom(7);
  for (let u = 0; u < users; u++) {
    const g = u % 8;
    for (let n = 0; n < 6; n++) b.add(`u${u}`, `i${g * 30 + Math.floor(rand() * 30)}`, 1);
  }
  return b.build();
}

const settings = { ...IMPLICIT_DEFAULTS, rank: 16, iterations: 8 };

describe("offline metrics of an ALS model", () => {
  it("finds the held-out item of a learnable matrix far above chance, the same figures every time", () => {
    const r = groupedRatings();
    const model = trainAls(r, settings);
    const m = evaluateAls(r, model);
    expect(m.users).toBeGreaterThan(300);
    expect(m.k).toBe(10);
    expect(m.hitRate).toBeGreaterThan(0.3);
    expect(m.ndcg).toBeGreaterThan(0.1);
    expect(m.ndcg).toBeLessThanOrEqual(m.hitRate);
    const again = evaluateAls(r, model);
    expect({ ...again, ms: 0 }).toEqual({ ...m, ms: 0 });
  });

  it("gives an untrained (random) model about chance", () => {
    const r = groupedRatings();
    const rand = seededRandom(3);
    const k = settings.rank;
    const random: AlsModel = {
      settings,
      users: r.users,
      items: r.items,
      U: Float32Array.from({ length: r.users.length * k }, () => rand() - 0.5),
      V: Float32Array.from({ length: r.items.length * k }, () => rand() - 0.5),
    };
    expect(evaluateAls(r, random).hitRate).toBeLessThan(0.15);
  });

  it("comes back from the training worker with the model", async () => {
    const r = groupedRatings();
    const expected = evaluateAls(r, trainAls(groupedRatings(), settings));
    const model = await trainInWorker({ ratings: r, settings });
    expect(model.offline).toBeDefined();
    expect(model.offline!.users).toBe(expected.users);
    expect(model.offline!.hitRate).toBe(expected.hitRate);
  }, 60_000);
});
