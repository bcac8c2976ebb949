import { describe, expect, it } from "vitest";
import {
  choleskySolve,
  createAlsIndex,
  createRatingsBuilder,
  FOLD_WOODBURY_MAX,
  gram,
  IMPLICIT_DEFAULTS,
  seededRandom,
  servedModel,
  trainAls,
} from "../actors/sources/index.js";

/**
 * The fold-in of a user's row (one ALS half-step for one user) solves
 * (VᵀV + λI + Σ α r y yᵀ) x = Σ (1 + α r) y. Short rows take the Woodbury identity against a
 * per-model inverse instead of a Cholesky factor of the whole system: the same vector, to
 * rounding.
 */
describe("the implicit fold-in of short rows by Woodbury", () => {
  const rand = seededRandom(5);
  const b = createRatingsBuilder();
  for (let u = 0; u < 120; u++)
    for (let n = 0; n < 20; n++) b.add(`u${u}`, `i${Math.floor(rand() * 300)}`, 1 + (n % 3));
  const settings = { ...IMPLICIT_DEFAULTS, rank: 16, iterations: 4 };
  const model = servedModel(trainAls(b.build(), settings));
  const k = settings.rank;
  const itemAt = new Map(model.items.map((i, x) => [i, x]));

  /** The definition: the normal equations built whole and solved by Cholesky. */
  function direct(row: ReadonlyMap<string, number>): Float64Array {
    const A = gram(model.V, k, settings.reg);
    const rhs = new Float64Array(k);
    for (const [item, v] of row) {
      const y = itemAt.get(item)! * k;
      const c = settings.alpha * v;
      for (let f = 0; f < k; f++) {
        rhs[f]! += (1 + c) * model.V[y + f]!;
        for (let g = 0; g < k; g++) A[f * k + g]! += c * model.V[y + f]! * model.V[y + g]!;
      }
    }
    const x = new Float64Array(k);
    choleskySolve(A, rhs, k, x);
    return x;
  }

  it("gives the vector of the whole system for rows of 1 to 20 known items", () => {
    const rows = new Map<string, Map<string, number>>();
    for (let n = 1; n <= 20; n++)
      for (let t = 0; t < 5; t++) {
        const row = new Map<string, number>();
        while (row.size < n)
          row.set(model.items[Math.floor(rand() * model.items.length)]!, 0.5 + rand() * 6);
        // An item the model does not know is left out, as before.
        if (t === 0) row.set("never-seen", 3);
        rows.set(`n${n}-${t}`, row);
      }
    const index = createAlsIndex(model, {
      changedAt: (u) => (rows.has(u) ? 1 : -1),
      row: (u) => rows.get(u),
    });
    let short = 0;
    for (const [user, row] of rows) {
      const known = new Map([...row].filter(([i]) => itemAt.has(i)));
      const want = direct(known);
      const got = index.vector(user)!;
      if (known.size <= FOLD_WOODBURY_MAX) short++;
      const scale = Math.max(...want.map(Math.abs));
      for (let f = 0; f < k; f++) expect(Math.abs(got[f]! - want[f]!) / scale).toBeLessThan(1e-5);
    }
    expect(short).toBe(FOLD_WOODBURY_MAX * 5);
    expect(index.vector("nobody")).toBeUndefined();
  });
});
