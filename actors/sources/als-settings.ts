/**
 * Alternating least squares on a user × item matrix, in plain Float64 loops.
 *
 * - implicit (Hu, Koren & Volinsky 2008): every cell is a preference p = 1 if r > 0 with
 *   confidence c = 1 + α·r; each user (then each item) solves (YᵀY + Yᵀ(C−I)Y + λI) x = YᵀC p.
 *   YᵀY is computed once per half-step, so a row costs O(nnz_row · rank · steps) with the
 *   conjugate-gradient solver (a few steps, warm-started from the previous vector, as the
 *   `implicit` library does) or O(nnz_row · rank² + rank³) with Cholesky (exact).
 * - explicit (ALS-WR, as Spark's ALS used by seed 001): each row solves
 *   (YᵤᵀYᵤ + λ·n_u·I) x = Yᵤᵀ r_u over its rated items only.
 *
 * Factors are initialised from a seeded PRNG and rows are visited in index order, so the same
 * ratings and settings train the same model, bit for bit.
 */
export interface AlsSettings {
  kind: "implicit" | "explicit";
  rank: number;
  reg: number;
  /** Confidence slope (implicit only). */
  alpha: number;
  iterations: number;
  solver: "cg" | "cholesky";
  /** Conjugate-gradient steps per row and half-iteration. */
  cgSteps: number;
  seed: number;
  /**
   * Iterations when training from a previous model (warm start: its users' and items' factors
   * as the starting point, new ones drawn from the seed); default `iterations`.
   */
  warmIterations?: number;
  /** Solve short rows exactly by the Woodbury identity (default true; false: measurement). */
  woodbury?: boolean;
}

export const IMPLICIT_DEFAULTS: AlsSettings = {
  kind: "implicit",
  rank: 64,
  reg: 0.05,
  alpha: 20,
  iterations: 15,
  solver: "cg",
  cgSteps: 3,
  seed: 42,
  warmIterations: 5,
};

/** Seed 001's Spark settings (rank 10, regParam 0.01, 10 iterations). */
export const EXPLICIT_SEED_001: AlsSettings = {
  kind: "explicit",
  rank: 10,
  reg: 0.01,
  alpha: 0,
  iterations: 10,
  solver: "cholesky",
  cgSteps: 0,
  seed: 42,
};
