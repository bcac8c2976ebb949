import type { Ratings } from "./als-matrix.js";
import type { OfflineMetrics } from "./als-eval.js";
import { seededRandom } from "./types.js";

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

/** A trained model as training gives it: every user's and every item's factors. */
export interface AlsModel {
  settings: AlsSettings;
  users: readonly string[];
  items: string[];
  /** users.length × rank, row-major. */
  U: Float32Array;
  /** items.length × rank, row-major. */
  V: Float32Array;
  /** Offline metrics on a held-out slice of its training data (als-eval.ts), when computed. */
  offline?: OfflineMetrics;
}

/**
 * A model as it is served and stored: what answers need that cannot be derived, the settings,
 * the item ids and their factors V. No user factors: a user's vector is solved from their
 * current row against V when first asked for (the fold-in least squares, als-model.ts), as
 * streaming ALS systems serve (Oryx 2's speed layer, `implicit`'s `recalculate_user`). A model
 * of 1M users at rank 64 was 256 MB of user factors against ~13 MB of item factors at 50k items.
 */
export interface ServedModel {
  settings: AlsSettings;
  items: string[];
  /** items.length × rank, row-major. */
  V: Float32Array;
  /** Users of the matrix it was trained on (a count: their vectors are not kept). */
  users: number;
  /**
   * Implicit: YᵀY + λI of V (`gram`), what every fold-in starts from (k × k), when the training
   * gave it (its worker computes it for the offline metrics): else computed at the first fold-in,
   * the same bits. 37 ms of CPU at 5k items, 230 ms at 50k, 1.06 s at 200k (rank 64).
   */
  YtY?: Float64Array;
  offline?: OfflineMetrics;
}

/** The served form of a model: its user factors and ids dropped (a served one as it is). */
export function servedModel(m: AlsModel | ServedModel): ServedModel {
  if (typeof m.users === "number") return m as ServedModel;
  return {
    settings: m.settings,
    items: m.items,
    V: m.V,
    users: m.users.length,
    ...(m.offline ? { offline: m.offline } : {}),
  };
}

/** Options of {@link trainAls} that change what it holds, never the factors it computes. */
export interface TrainOptions {
  /**
   * Return every user's factors (default true). False: `U` comes back empty; the training worker
   * sends only V, so it never builds the full user matrix (256 B per user at rank 64).
   */
  userFactors?: boolean;
  /**
   * Hold one factor row per distinct (item, value) for the users with a single entry, instead
   * of one per user (default true; used only where a single-entry row is solved exactly: see
   * {@link trainAls}). False: one row per user, as before (measurement and tests).
   */
  shareSingles?: boolean;
  /**
   * Hold no factor row for the users with 2 entries (COMPUTE_MAX_ENTRIES) when the user
   * half-step solves them exactly by Woodbury (default true, with `shareSingles`): the item
   * half-step solves each again from its entries where it reads them (its item's column, and the
   * Gram matrix), against a copy of the item factors of that user half-step. False: a row each,
   * as before.
   */
  computeShort?: boolean;
  /**
   * Filled with what the training held: user factor rows, how many users shared them, and how
   * many had theirs solved again where read instead.
   */
  stats?: { userRows?: number; sharedUsers?: number; computedUsers?: number };
}

/**
 * Trains a model; `onIteration` is called after each full iteration (progress, cancellation).
 * With `from` (the previous model of the same settings), its item factors are the starting point
 * of the items it knows, and `warmIterations` are run: a periodic retraining converges from where
 * the last one stopped. A served model keeps no user factors, so the first half-step solves every
 * user exactly against those item factors (Cholesky where CG would start from the seed's draws: a
 * user's CG steps are warm-started from their previous vector, which no longer exists; short rows
 * are exact by Woodbury anyway). A `from` with user factors (a model as training gives it) starts
 * its users from them instead, CG as in every other half-step. The result is still a function of
 * (ratings, settings, from).
 *
 * Users with a single entry (most of a shop's, and every one of bench step 7's) are solved
 * exactly whenever the user half-step solves short rows by Woodbury or by Cholesky: their vector
 * is then a function of (item, value) and the item factors alone, so users who share one hold
 * one row of factors, solved once per half-step, and the item half-step reads that row through
 * the item's column. The Gram matrix of the user factors still runs over every user in order, so
 * the factors are the same bits as with a row per user (test/sources-als "shares"); a training at
 * 1M single-entry users holds rows for its distinct (item, value) pairs, not 256 MB of U.
 */
export function trainAls(
  r: Ratings,
  s: AlsSettings,
  onIteration?: (it: number) => void,
  from?: AlsModel | ServedModel,
  o: TrainOptions = {},
): AlsModel {
  const k = s.rank;
  const rand = seededRandom(s.seed);
  const warm = from && from.settings.rank === k ? from : undefined;
  const nUsers = r.userPtr.length - 1;
  const nItems = r.itemPtr.length - 1;
  // Row counts come from the CSR pointers: a worker gets the matrix without its ids (cloning a
  // million id strings would cost the sending thread more than the rest of the job).
  const init = (
    n: number,
    ids: readonly string[],
    prevIds: readonly string[] | undefined,
    prev: Float32Array | undefined,
  ) => {
    const a = new Float32Array(n * k);
    for (let x = 0; x < a.length; x++) a[x] = rand() * 0.01;
    if (prevIds && prev) {
      const at = new Map<string, number>();
      prevIds.forEach((id, x) => at.set(id, x));
      ids.forEach((id, x) => {
        const p = at.get(id);
        if (p !== undefined) a.set(prev.subarray(p * k, (p + 1) * k), x * k);
      });
    }
    return a;
  };
  const warmUsers = warm && typeof warm.users !== "number" ? (warm as AlsModel) : undefined;
  const share =
    o.shareSingles !== false ? sharedRows(r, s, k, o.computeShort !== false) : undefined;
  let U: Float32Array;
  if (!share) U = init(nUsers, r.users, warmUsers?.users, warmUsers?.U);
  else {
    // The same draws as one row per user (V's start must not move), kept for the users whose
    // rows stay their own; shared rows are solved before they are read.
    U = new Float32Array(share.rows * k);
    let prevAt: Map<string, number> | undefined;
    if (warmUsers && r.users.length === nUsers) {
      prevAt = new Map();
      warmUsers.users.forEach((id, x) => prevAt!.set(id, x));
    }
    for (let u = 0; u < nUsers; u++) {
      const row = share.rowOf[u]!;
      const own = row >= 0 && row < share.own;
      for (let f = 0; f < k; f++) {
        const v = rand() * 0.01;
        if (own) U[row * k + f] = v;
      }
      const p = own ? prevAt?.get(r.users[u]!) : undefined;
      if (p !== undefined) U.set(warmUsers!.U.subarray(p * k, (p + 1) * k), row * k);
    }
  }
  const V = init(nItems, r.items, warm?.items, warm?.V);
  const iterations = warm ? (s.warmIterations ?? s.iterations) : s.iterations;
  /** The last user half-step's short users, solved again where read. */
  let computed: ComputedUsers | undefined;
  const Vprev = share && share.computed > 0 ? new Float32Array(V.length) : V;
  for (let it = 0; it < iterations; it++) {
    const exact = it === 0 && warm !== undefined && !warmUsers && s.solver === "cg";
    const us = exact ? { ...s, solver: "cholesky" as const } : s;
    if (!share) {
      halfStep(U, V, r.userPtr, r.userCols, r.userVals, us);
      halfStep(V, U, r.itemPtr, r.itemRows, r.itemVals, s);
    } else if (share.computed === 0) {
      halfStep(U, V, r.userPtr, r.userCols, r.userVals, us, { share });
      halfStep(V, U, r.itemPtr, share.itemRows, r.itemVals, s, {
        gramRows: share.rowOf,
        n: nUsers,
      });
    } else {
      const { wb: plan, userGram } = halfStep(U, V, r.userPtr, r.userCols, r.userVals, us, {
        share,
        userGram: true,
      });
      if (!plan || !userGram) throw new Error("ALS: short users without a Woodbury plan");
      // The item half-step overwrites V: the users are solved against the V they were.
      Vprev.set(V);
      computed = computedUsers(r, share, U, plan, Vprev, s);
      itemHalfStep(V, r, share, computed, s, nUsers, userGram);
    }
    onIteration?.(it + 1);
  }
  if (o.stats) {
    o.stats.userRows = share ? share.rows : nUsers;
    o.stats.sharedUsers = share ? share.shared : 0;
    o.stats.computedUsers = share ? share.computed : 0;
  }
  if (o.userFactors === false) U = new Float32Array(0);
  else if (share) {
    const full = new Float32Array(nUsers * k);
    for (let u = 0; u < nUsers; u++) {
      const row = share.rowOf[u]!;
      if (row >= 0) full.set(U.subarray(row * k, (row + 1) * k), u * k);
      else if (row === COMPUTED && computed) computed.fill(u, full, u * k);
    }
    U = full;
  }
  return { settings: s, users: r.users, items: r.items, U, V };
}

/**
 * Where each user's factors live when single-entry users share rows: rows [0, own) are users of
 * their own (in user order), rows [own, rows) one per distinct (item, value) of the single-entry
 * users, whose item and value are `idx`/`val` at (row − own): a one-entry row's CSR, solved as a
 * user of that row would be. Users without entries have no row (−1: their factors are 0).
 * `itemRows` is the item columns' user index mapped to those rows. Undefined where sharing
 * would change the factors (a single-entry row solved by warm-started CG) or saves nothing.
 */
interface SharedRows {
  rowOf: Int32Array;
  own: number;
  rows: number;
  shared: number;
  /** Users without a row (rowOf COMPUTED): 2 entries, solved again where read. */
  computed: number;
  idx: Int32Array;
  val: Float32Array;
  /** The item columns' user rows; a computed user as −2 − user. */
  itemRows: Int32Array;
}

/** rowOf of a user whose factors are solved again where read (trainAls `computeShort`). */
const COMPUTED = -3;
/**
 * The most entries of a user whose factors are solved again where read rather than held: the
 * item half-step solves such a user once per entry, so the extra CPU grows with the entries
 * while the saving is one row (256 B at rank 64). Measured (bench/als-train.ts, 15 iterations,
 * rank 64, CPU of the training): 20k users × 8 events 10.1 s with a row each, 28.5 s with every
 * user of 2-16 entries solved again; 100k users × 2 events +15%.
 */
const COMPUTE_MAX_ENTRIES = 2;

function sharedRows(
  r: Ratings,
  s: AlsSettings,
  k: number,
  computeShort: boolean,
): SharedRows | undefined {
  const nUsers = r.userPtr.length - 1;
  const nItems = r.itemPtr.length - 1;
  const ptr = r.userPtr;
  let singles = 0;
  let short = 0;
  let pairs = 0;
  const maxRow = Math.max(4, Math.floor(2 * Math.sqrt(k)));
  for (let u = 0; u < nUsers; u++) {
    const m = ptr[u + 1]! - ptr[u]!;
    if (m === 1) singles++;
    if (m <= maxRow) short++;
    if (m >= 2 && m <= COMPUTE_MAX_ENTRIES) pairs++;
  }
  // Exact for a one-entry row: Woodbury (implicit, on when halfStep's plan is: woodburyPlan's
  // test with the items as the fixed side) or Cholesky (explicit, or the cholesky solver).
  const woodbury = s.kind === "implicit" && s.woodbury !== false && short * 4 > nItems;
  const exact = woodbury || s.kind === "explicit" || s.solver === "cholesky";
  // Rows of 2 to maxRow entries are Woodbury's too (halfStep's plan): a function of the entries
  // and the item factors, as a single entry's. Only those of up to COMPUTE_MAX_ENTRIES go
  // without a row: solving one again costs about its entries × its own solve per iteration.
  const compute = woodbury && computeShort;
  const computed = compute ? pairs : 0;
  if (!exact || (singles < 2 && computed === 0) || nItems >= 2 ** 21) return undefined;
  const rowOf = new Int32Array(nUsers);
  let own = 0;
  for (let u = 0; u < nUsers; u++) {
    const m = ptr[u + 1]! - ptr[u]!;
    rowOf[u] = m === 0 ? -1 : m === 1 ? -2 : compute && m <= COMPUTE_MAX_ENTRIES ? COMPUTED : own++;
  }
  const bits = new Uint32Array(1);
  const asFloat = new Float32Array(bits.buffer);
  const at = new Map<number, number>();
  const idx: number[] = [];
  const val: number[] = [];
  for (let u = 0; u < nUsers; u++) {
    if (rowOf[u] !== -2) continue;
    const e = ptr[u]!;
    const j = r.userCols[e]!;
    asFloat[0] = r.userVals[e]!;
    const key = j * 2 ** 32 + bits[0]!;
    let t = at.get(key);
    if (t === undefined) {
      at.set(key, (t = idx.length));
      idx.push(j);
      val.push(asFloat[0]);
    }
    rowOf[u] = own + t;
  }
  const itemRows = new Int32Array(r.itemRows.length);
  for (let q = 0; q < itemRows.length; q++) {
    const u = r.itemRows[q]!;
    const row = rowOf[u]!;
    itemRows[q] = row === COMPUTED ? -2 - u : row;
  }
  return {
    rowOf,
    own,
    rows: own + idx.length,
    shared: singles,
    computed,
    idx: Int32Array.from(idx),
    val: Float32Array.from(val),
    itemRows,
  };
}

/**
 * Solves every row of X against the fixed factors Y, over the rows' entries (ptr, idx, val).
 * `share` (the user half-step with shared rows): X holds rows by `share.rowOf`, the shared ones
 * solved once each from their (item, value). `gramRows` (the item half-step with shared rows):
 * Y's Gram matrix runs over every user in order through it, and `n` users decide Woodbury.
 * `userGram` (the user half-step with computed users, implicit): also the Gram matrix of the
 * users' factors as solved (+ λI), what the item half-step's YᵀY is.
 */
function halfStep(
  X: Float32Array,
  Y: Float32Array,
  ptr: Int32Array,
  idx: Int32Array,
  val: Float32Array,
  s: AlsSettings,
  o: { share?: SharedRows; gramRows?: Int32Array; n?: number; userGram?: boolean } = {},
): { wb: WoodburyPlan | undefined; userGram?: Float64Array } {
  const k = s.rank;
  const rows = ptr.length - 1;
  const YtY = s.kind === "implicit" ? gram(Y, k, s.reg, o.gramRows) : new Float64Array(k * k);
  const t: RowScratch = {
    A: new Float64Array(k * k),
    b: new Float64Array(k),
    x: new Float64Array(k),
    cg: { r: new Float64Array(k), p: new Float64Array(k), Ap: new Float64Array(k) },
  };
  const wb =
    s.kind === "implicit" && s.woodbury !== false
      ? woodburyPlan(YtY, Y, ptr, k, o.n ?? Y.length / k)
      : undefined;
  const share = o.share;
  if (share && o.userGram && wb) {
    // Shared rows first (each a function of its (item, value) and Y alone: order is free), then
    // every user in order, their factors added to the Gram matrix once solved (gram()'s order,
    // the same bits); a computed user's are solved into `one` and dropped.
    for (let q = 0; q < share.idx.length; q++)
      solveRow(X, (share.own + q) * k, Y, share.idx, share.val, q, q + 1, s, YtY, wb, t);
    const G = new Float64Array(k * k);
    const one = new Float32Array(k);
    for (let u = 0; u < rows; u++) {
      const row = share.rowOf[u]!;
      if (row === -1) continue;
      if (row === COMPUTED) {
        solveRow(one, 0, Y, idx, val, ptr[u]!, ptr[u + 1]!, s, YtY, wb, t);
        gramAdd(G, one, 0, k);
        continue;
      }
      if (row < share.own) solveRow(X, row * k, Y, idx, val, ptr[u]!, ptr[u + 1]!, s, YtY, wb, t);
      gramAdd(G, X, row * k, k);
    }
    return { wb, userGram: gramFinish(G, k, s.reg) };
  }
  for (let u = 0; u < rows; u++) {
    const from = ptr[u]!;
    const to = ptr[u + 1]!;
    if (share) {
      const row = share.rowOf[u]!;
      if (row >= 0 && row < share.own) solveRow(X, row * k, Y, idx, val, from, to, s, YtY, wb, t);
      continue;
    }
    solveRow(X, u * k, Y, idx, val, from, to, s, YtY, wb, t);
  }
  if (share)
    for (let q = 0; q < share.idx.length; q++)
      solveRow(X, (share.own + q) * k, Y, share.idx, share.val, q, q + 1, s, YtY, wb, t);
  return { wb };
}

/**
 * The factors of every user as the user half-step gave them, rows held or not: a held row is
 * copied, a computed user's solved again by Woodbury as that half-step solved it (the same plan,
 * the same item factors: `V` is a copy of them), so the same bits.
 */
interface ComputedUsers {
  /** Writes user u's factors at out[off, off + rank). */
  fill(u: number, out: Float32Array, off: number): void;
  /** The same for a column entry's user row (SharedRows.itemRows). */
  fillRow(row: number, out: Float32Array, off: number): void;
}

function computedUsers(
  r: Ratings,
  share: SharedRows,
  U: Float32Array,
  plan: WoodburyPlan,
  V: Float32Array,
  s: AlsSettings,
): ComputedUsers {
  const k = s.rank;
  const x = new Float64Array(k);
  plan.Y = V;
  const solve = (u: number, out: Float32Array, off: number) => {
    woodburyRow(x, plan, V, r.userCols, r.userVals, r.userPtr[u]!, r.userPtr[u + 1]!, k, s.alpha);
    for (let f = 0; f < k; f++) out[off + f] = x[f]!;
  };
  const held = (row: number, out: Float32Array, off: number) => {
    for (let f = 0; f < k; f++) out[off + f] = U[row * k + f]!;
  };
  return {
    fill(u, out, off) {
      const row = share.rowOf[u]!;
      if (row >= 0) held(row, out, off);
      else if (row === COMPUTED) solve(u, out, off);
      else out.fill(0, off, off + k);
    },
    fillRow(row, out, off) {
      if (row >= 0) held(row, out, off);
      else solve(-2 - row, out, off);
    },
  };
}

/**
 * The item half-step when some users hold no row (computed): halfStep's, with each item's
 * column of user factors filled first (held rows copied, computed users solved again) and solved
 * as a row over that column; the users' Gram matrix comes from the user half-step. Every solve
 * reads the same numbers in the same order as with a row per user: the same bits.
 */
function itemHalfStep(
  V: Float32Array,
  r: Ratings,
  share: SharedRows,
  users: ComputedUsers,
  s: AlsSettings,
  nUsers: number,
  /** The users' Gram matrix + λI (halfStep `userGram`). */
  YtY: Float64Array,
) {
  const k = s.rank;
  const t: RowScratch = {
    A: new Float64Array(k * k),
    b: new Float64Array(k),
    x: new Float64Array(k),
    cg: { r: new Float64Array(k), p: new Float64Array(k), Ap: new Float64Array(k) },
  };
  const ptr = r.itemPtr;
  let longest = 0;
  for (let j = 0; j + 1 < ptr.length; j++) longest = Math.max(longest, ptr[j + 1]! - ptr[j]!);
  let col = new Float32Array(Math.min(longest, 1024) * k);
  const local = Int32Array.from({ length: longest }, (_, q) => q);
  // halfStep's plan for the item rows (the same test and A₀⁻¹), its Z per column: a Z row is a
  // function of its user row alone, so the same numbers as one cached per user.
  const base = woodburyPlan(YtY, col, ptr, k, nUsers);
  const wb: WoodburyPlan | undefined = base && {
    maxRow: base.maxRow,
    inv: base.inv,
    Z: new Float64Array(base.maxRow * k),
    done: new Uint8Array(base.maxRow),
    Y: col,
    M: base.M,
    g: base.g,
    h: base.h,
  };
  for (let j = 0; j + 1 < ptr.length; j++) {
    const from = ptr[j]!;
    const to = ptr[j + 1]!;
    const n = to - from;
    if (n * k > col.length) col = new Float32Array(n * k);
    for (let q = 0; q < n; q++) users.fillRow(share.itemRows[from + q]!, col, q * k);
    if (wb) {
      wb.Y = col;
      wb.done.fill(0);
    }
    solveRow(V, j * k, col, local, r.itemVals.subarray(from, to), 0, n, s, YtY, wb, t);
  }
}

interface RowScratch {
  A: Float64Array;
  b: Float64Array;
  x: Float64Array;
  cg: { r: Float64Array; p: Float64Array; Ap: Float64Array };
}

/** One row of a half-step: X[off, off + k) from its entries [from, to) of (idx, val). */
function solveRow(
  X: Float32Array,
  off: number,
  Y: Float32Array,
  idx: Int32Array,
  val: Float32Array,
  from: number,
  to: number,
  s: AlsSettings,
  YtY: Float64Array,
  wb: WoodburyPlan | undefined,
  t: RowScratch,
) {
  const k = s.rank;
  const { A, b, x } = t;
  if (to === from) {
    // No entries: the minimiser is 0 (implicit: all preferences 0; explicit: nothing known).
    X.fill(0, off, off + k);
    return;
  }
  if (wb && to - from <= wb.maxRow) {
    woodburyRow(x, wb, Y, idx, val, from, to, k, s.alpha);
  } else if (s.kind === "implicit" && s.solver === "cg") {
    for (let f = 0; f < k; f++) x[f] = X[off + f]!;
    cgRow(x, YtY, Y, idx, val, from, to, k, s.alpha, s.cgSteps, t.cg);
  } else {
    A.set(YtY);
    b.fill(0);
    const diag = s.kind === "implicit" ? 0 : s.reg * (to - from);
    for (let f = 0; f < k; f++) A[f * k + f]! += diag;
    for (let q = from; q < to; q++) {
      addObservation(A, b, Y, idx[q]!, val[q]!, s);
    }
    choleskySolve(A, b, k, x);
  }
  for (let f = 0; f < k; f++) X[off + f] = x[f]!;
}

/**
 * Short rows (most users of a shop: a handful of items) are solved exactly by the Woodbury
 * identity instead: with A₀ = YᵀY + λI, D = diag(α·r) and Z = Y A₀⁻¹ computed once per
 * half-step, (A₀ + Yᵤᵀ D Yᵤ)⁻¹ b costs O(m²·rank + m³) for a row of m items, against
 * O(rank²) per CG step — 8× faster training on REES46, and exact. Used when enough rows are
 * short to pay for Z (rows × rank²).
 */
interface WoodburyPlan {
  maxRow: number;
  /** Rows of Z = Y A₀⁻¹, computed when first needed (`done`). */
  Z: Float64Array;
  done: Uint8Array;
  inv: Float64Array;
  Y: Float32Array;
  /** woodburyRow's m × m system and its two vectors (m ≤ maxRow), reused from row to row. */
  M: Float64Array;
  g: Float64Array;
  h: Float64Array;
}

function zRow(p: WoodburyPlan, j: number, k: number): number {
  const o = j * k;
  if (p.done[j]) return o;
  p.done[j] = 1;
  for (let r = 0; r < k; r++) {
    let acc = 0;
    for (let c = 0; c < k; c++) acc += p.inv[r * k + c]! * p.Y[o + c]!;
    p.Z[o + r] = acc;
  }
  return o;
}

function woodburyPlan(
  YtY: Float64Array,
  Y: Float32Array,
  ptr: Int32Array,
  k: number,
  /** Rows of the fixed side the test below counts (Y may hold fewer: shared rows). */
  n: number,
): WoodburyPlan | undefined {
  const maxRow = Math.max(4, Math.floor(2 * Math.sqrt(k)));
  let short = 0;
  for (let u = 0; u + 1 < ptr.length; u++) if (ptr[u + 1]! - ptr[u]! <= maxRow) short++;
  if (short * 4 <= n) return undefined;
  // A₀⁻¹, column by column, from one Cholesky factor.
  const L = Float64Array.from(YtY);
  const e = new Float64Array(k);
  const col = new Float64Array(k);
  const inv = new Float64Array(k * k);
  choleskyFactor(L, k);
  for (let c = 0; c < k; c++) {
    e.fill(0);
    e[c] = 1;
    choleskyBackSolve(L, e, k, col);
    for (let r = 0; r < k; r++) inv[r * k + c] = col[r]!;
  }
  const held = Y.length / k;
  return {
    maxRow,
    Z: new Float64Array(held * k),
    done: new Uint8Array(held),
    inv,
    Y,
    M: new Float64Array(maxRow * maxRow),
    g: new Float64Array(maxRow),
    h: new Float64Array(maxRow),
  };
}

/** x = (A₀ + Yᵤᵀ D Yᵤ)⁻¹ Yᵤᵀ c by Woodbury: x₀ = Σ cᵢ zᵢ; (D⁻¹ + Yᵤ Zᵤᵀ) h = Yᵤ x₀; x = x₀ − Σ hᵢ zᵢ. */
function woodburyRow(
  x: Float64Array,
  plan: WoodburyPlan,
  Y: Float32Array,
  idx: Int32Array,
  val: Float32Array,
  from: number,
  to: number,
  k: number,
  alpha: number,
) {
  const m = to - from;
  const Z = plan.Z; // rows filled by zRow in the first loop below
  x.fill(0);
  for (let q = from; q < to; q++) {
    const zo = zRow(plan, idx[q]!, k);
    const c = 1 + alpha * val[q]!;
    for (let f = 0; f < k; f++) x[f]! += c * Z[zo + f]!;
  }
  // Only M's lower triangle is written and read (choleskySolve), each entry before it is read.
  const { M, g, h } = plan;
  for (let a = 0; a < m; a++) {
    const ya = idx[from + a]! * k;
    let gx = 0;
    for (let f = 0; f < k; f++) gx += Y[ya + f]! * x[f]!;
    g[a] = gx;
    for (let b = 0; b <= a; b++) {
      const zb = idx[from + b]! * k;
      let d = 0;
      for (let f = 0; f < k; f++) d += Y[ya + f]! * Z[zb + f]!;
      M[a * m + b] = d;
    }
    M[a * m + a]! += 1 / (alpha * val[from + a]!);
  }
  choleskySolve(M, g, m, h);
  for (let a = 0; a < m; a++) {
    const zo = idx[from + a]! * k;
    const ha = h[a]!;
    for (let f = 0; f < k; f++) x[f]! -= ha * Z[zo + f]!;
  }
}

/**
 * YᵀY + λI (lower triangle and upper, k × k). `rows`: Y's rows are `rows[j]` for j in order
 * (−1: a row of zeros), so shared rows count once per user, in the users' order (the same bits).
 */
export function gram(Y: Float32Array, k: number, reg: number, rows?: Int32Array): Float64Array {
  const G = new Float64Array(k * k);
  const n = rows ? rows.length : Y.length / k;
  for (let j = 0; j < n; j++) {
    const row = rows ? rows[j]! : j;
    if (row < 0) continue;
    gramAdd(G, Y, row * k, k);
  }
  return gramFinish(G, k, reg);
}

/** Adds the row Y[o, o + k) to the lower triangle of G. */
function gramAdd(G: Float64Array, Y: Float32Array, o: number, k: number) {
  for (let f = 0; f < k; f++) {
    const yf = Y[o + f]!;
    if (yf === 0) continue;
    for (let g = 0; g <= f; g++) G[f * k + g]! += yf * Y[o + g]!;
  }
}

/** G + λI, its upper triangle from the lower. */
function gramFinish(G: Float64Array, k: number, reg: number): Float64Array {
  for (let f = 0; f < k; f++) {
    G[f * k + f]! += reg;
    for (let g = 0; g < f; g++) G[g * k + f] = G[f * k + g]!;
  }
  return G;
}

/** A few conjugate-gradient steps on (YtY + Σ α r y yᵀ) x = Σ (1 + α r) y, from x. */
function cgRow(
  x: Float64Array,
  YtY: Float64Array,
  Y: Float32Array,
  idx: Int32Array,
  val: Float32Array,
  from: number,
  to: number,
  k: number,
  alpha: number,
  steps: number,
  t: { r: Float64Array; p: Float64Array; Ap: Float64Array },
) {
  const { r, p, Ap } = t;
  // r = b − A x
  for (let f = 0; f < k; f++) {
    let s = 0;
    for (let g = 0; g < k; g++) s -= YtY[f * k + g]! * x[g]!;
    r[f] = s;
  }
  for (let q = from; q < to; q++) {
    const yo = idx[q]! * k;
    const c = 1 + alpha * val[q]!;
    let yx = 0;
    for (let f = 0; f < k; f++) yx += Y[yo + f]! * x[f]!;
    const w = c - (c - 1) * yx;
    for (let f = 0; f < k; f++) r[f]! += w * Y[yo + f]!;
  }
  p.set(r);
  let rs = dot(r, r, k);
  for (let step = 0; step < steps && rs > 1e-20; step++) {
    for (let f = 0; f < k; f++) {
      let s = 0;
      for (let g = 0; g < k; g++) s += YtY[f * k + g]! * p[g]!;
      Ap[f] = s;
    }
    for (let q = from; q < to; q++) {
      const yo = idx[q]! * k;
      let yp = 0;
      for (let f = 0; f < k; f++) yp += Y[yo + f]! * p[f]!;
      const w = alpha * val[q]! * yp;
      for (let f = 0; f < k; f++) Ap[f]! += w * Y[yo + f]!;
    }
    const a = rs / dot(p, Ap, k);
    for (let f = 0; f < k; f++) {
      x[f]! += a * p[f]!;
      r[f]! -= a * Ap[f]!;
    }
    const next = dot(r, r, k);
    for (let f = 0; f < k; f++) p[f] = r[f]! + (next / rs) * p[f]!;
    rs = next;
  }
}

function dot(a: Float64Array, b: Float64Array, k: number): number {
  let s = 0;
  for (let f = 0; f < k; f++) s += a[f]! * b[f]!;
  return s;
}

/**
 * Adds one observed value `v` of item `j` (a row of the fixed factors Y) to a row's normal
 * equations, lower triangle of A: implicit A += (c−1) y yᵀ, b += c y; explicit A += y yᵀ,
 * b += r y. Training, fold-in (als-model.ts) and the held-out evaluation (als-eval.ts) share it.
 */
export function addObservation(
  A: Float64Array,
  b: Float64Array,
  Y: Float32Array,
  j: number,
  v: number,
  s: AlsSettings,
): void {
  const k = s.rank;
  const yo = j * k;
  const wa = s.kind === "implicit" ? s.alpha * v : 1;
  const wb = s.kind === "implicit" ? 1 + s.alpha * v : v;
  for (let f = 0; f < k; f++) {
    const yf = Y[yo + f]!;
    b[f]! += wb * yf;
    const af = wa * yf;
    for (let g = 0; g <= f; g++) A[f * k + g]! += af * Y[yo + g]!;
  }
}

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
function choleskyFactor(A: Float64Array, k: number) {
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
function choleskyBackSolve(A: Float64Array, b: Float64Array, k: number, x: Float64Array) {
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
