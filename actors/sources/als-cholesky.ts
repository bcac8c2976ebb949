/**
 * Solves A x = b for a symmetric positive definite A given by its lower triangle (overwritten
 * with its Cholesky factor). A tiny jitter keeps a nearly singular A (an unseen row) solvable.
 */
export function choleskySolve(A: Float64Array, b: Float64Array, k: number, x: Float64Array) {
  choleskyFactor(A, k);
  choleskyBackSolve(A, b, k, x);
}

/**
 * Overwrites the lower triangle of A with its Cholesky factor L (A = L Lᵀ). Below the diagonal,
 * four rows at a time: each row's sum runs in the same order as one row at a time (the same
 * bits), and the independent chains keep the CPU busier: ~35% less time at rank 64 (a served
 * answer's fold-in solves one such system: bench/serve-micro.ts).
 */
export function choleskyFactor(A: Float64Array, k: number) {
  for (let j = 0; j < k; j++) {
    const jo = j * k;
    let d = A[jo + j]!;
    for (let m = 0; m < j; m++) d -= A[jo + m]! * A[jo + m]!;
    const l = Math.sqrt(Math.max(d, 1e-12));
    A[jo + j] = l;
    let i = j + 1;
    for (; i + 3 < k; i += 4) {
      const io = i * k;
      const po = io + k;
      const qo = po + k;
      const ro = qo + k;
      let s = A[io + j]!;
      let t = A[po + j]!;
      let u = A[qo + j]!;
      let v = A[ro + j]!;
      for (let m = 0; m < j; m++) {
        const a = A[jo + m]!;
        s -= A[io + m]! * a;
        t -= A[po + m]! * a;
        u -= A[qo + m]! * a;
        v -= A[ro + m]! * a;
      }
      A[io + j] = s / l;
      A[po + j] = t / l;
      A[qo + j] = u / l;
      A[ro + j] = v / l;
    }
    for (; i < k; i++) {
      let s = A[i * k + j]!;
      for (let m = 0; m < j; m++) s -= A[i * k + m]! * A[jo + m]!;
      A[i * k + j] = s / l;
    }
  }
}

/** Solves L Lᵀ x = b given the factor L in the lower triangle of A. */
export function choleskyBackSolve(A: Float64Array, b: Float64Array, k: number, x: Float64Array) {
  for (let i = 0; i < k; i++) {
    let s = b[i]!;
    for (let m = 0; m < i; m++) s -= A[i * k + m]! * x[m]!;
    x[i] = s / A[i * k + i]!;
  }
  for (let i = k - 1; i >= 0; i--) {
    let s = x[i]!;
    for (let m = i + 1; m < k; m++) s -= A[m * k + i]! * x[m]!;
    x[i] = s / A[i * k + i]!;
  }
}
