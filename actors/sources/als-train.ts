import type { Ratings } from "./als-matrix-rows.js";
import type { AlsModel, ServedModel } from "./als-served.js";
import type { AlsSettings } from "./als-settings.js";
import { COMPUTED, sharedRows, type SharedRows } from "./als-shared-rows.js";
import {
  gram,
  gramAdd,
  gramFinish,
  solveRow,
  woodburyPlan,
  woodburyRow,
  type RowScratch,
  type WoodburyPlan,
} from "./als-solve.js";
import { seededRandom } from "./types.js";

// ALS training: the iterations and their half-steps over the matrix (als-matrix.ts), with the
// users who share or hold no factor row (als-shared-rows.ts); each row is solved by als-solve.ts.
// The method and its settings: als-settings.ts.

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
