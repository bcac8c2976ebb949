/**
 * Where the collaborative source trains (DESIGN §3.7): training points decided per user
 * partition, the same in every partition, whatever their records' interleaving or batching.
 *
 * A training point is due where event-time progress enters a new RETRAIN_INTERVAL, or where an
 * idle marker moved it (the input went quiet), with events since the last point. Progress is
 * parse's, one number for the whole input: a record carries it as it was before the record
 * (`wb`), a hop without records carries it, and parse sends every partition the idle markers it
 * applied (envelope.ts `ix`). So each partition sees the same sequence of states (the interval
 * progress is in, and the idle markers applied so far) as the whole input does, though it may
 * skip some (it only looks when it has a record or a hop). Where its state moves, it *crosses*:
 * it notes the state and its events so far, and sends the trainer what changed in its rows since
 * its last crossing, then the crossing (collaborative-copy.ts): the trainer's copy of its rows,
 * marked there (copy on write, als-matrix.ts), holds its rows at every crossing not yet judged.
 *
 * The partitions' states are ordered (both parts only grow, and a partition behind in one is
 * behind in the other), and a partition's rows at its first crossing at or past a state X are its
 * rows at the input position where the whole input reached X: a record past that position
 * carries a progress that would have made it cross first, and every idle marker up to there has
 * reached it. So the matrix of state X is every partition's marked rows at its first crossing at
 * or past X, once each has one, and the points are chosen from the states as the whole input
 * passes them, as one instance fed everything in input order would (collaborative-stage.ts).
 */

/** A partition's state: the RETRAIN_INTERVAL index of progress (-1: none yet) and idle markers applied. */
export interface PointState {
  e: number;
  i: number;
}

/**
 * Where a partition's state moved: the mark `c` of its rows, the state, its events so far and
 * the progress it had seen.
 */
export interface Crossing extends PointState {
  c: number;
  n: number;
  t: number;
}

/** A partition's bookkeeping (stage state). */
export interface PartPoints extends PointState {
  /** Events fed. */
  n: number;
  /** Progress seen (-1: none). */
  progress: number;
  /** The next crossing's mark. */
  next: number;
  /** Records sent to the trainer (the next one's sequence is this plus one). */
  out: number;
  /** EVENTS sequence of the newest record fed at the last crossing (-1: none). */
  taken: number;
  /** EVENTS sequence of the newest record fed (-1: none). */
  s: number;
}

export const NO_POINTS: PartPoints = {
  e: -1,
  i: 0,
  n: 0,
  progress: -1,
  next: 0,
  out: 0,
  taken: -1,
  s: -1,
};

/** State a is past b (they are ordered: see above). */
export const past = (a: PointState, b: PointState): boolean => a.e > b.e || a.i > b.i;
/** State a is at or past b. */
export const atOrPast = (a: PointState, b: PointState): boolean => a.e >= b.e && a.i >= b.i;

/**
 * A partition's crossings as its records, hops and idle markers come (`cross`: called with each,
 * where the partition's rows are its rows there). Mutates `p` (the caller stores it).
 */
export function partCrossings(p: PartPoints, retrainMs: number, cross: (x: Crossing) => void) {
  const epochOf = (progress: number) =>
    retrainMs > 0 && progress >= 0 ? Math.floor(progress / retrainMs) : -1;
  const crossed = () => cross({ c: p.next++, e: p.e, i: p.i, n: p.n, t: p.progress });
  return {
    /** Progress moved to `to` (a record's `wb` before it, its time after it, a hop's). */
    advance(to: number) {
      if (to <= p.progress) return;
      p.progress = to;
      const e = epochOf(to);
      if (e > p.e) {
        p.e = e;
        crossed();
      }
    },
    /** An event was fed (its EVENTS sequence). */
    fed(s: number) {
      p.n++;
      p.s = s;
    },
    /** An idle marker parse applied: progress moved to `progress` without an event. */
    idle(progress: number) {
      p.progress = Math.max(p.progress, progress);
      p.e = Math.max(p.e, epochOf(p.progress));
      p.i++;
      crossed();
    },
  };
}

/** What the trainer keeps (stage state of collaborative-trainer/0). */
export interface TrainerPoints {
  /** The newest state judged. */
  seen: PointState;
  /** Events (over all partitions) at the newest point. */
  at: number;
  /** The newest point, while its model is not there. */
  pending?: PointState & { at: number };
}

export const NO_TRAINER: TrainerPoints = { seen: { e: -1, i: 0 }, at: 0 };

/** A point judged due: its state, events and progress. */
export interface Due extends PointState {
  at: number;
  progress: number;
}

/**
 * Judges the states the whole input has passed, in order, from the partitions' crossings (in
 * partition order; a partition not here: nothing is judged). Returns the new bookkeeping and
 * the points found due, oldest first. A state is judged once every partition has crossed at or
 * past it; due as one instance would find it: events since the last point, and progress entered
 * a new interval after the first, or an idle marker was applied.
 */
export function judge(
  t: TrainerPoints,
  parts: readonly (readonly Crossing[] | undefined)[],
): { t: TrainerPoints; due: Due[] } {
  const due: Due[] = [];
  let { seen, at } = t;
  if (parts.some((c) => c === undefined)) return { t, due };
  const lists = parts as readonly (readonly Crossing[])[];
  for (;;) {
    // The least state past `seen` any partition crossed.
    let x: PointState | undefined;
    for (const list of lists) {
      const c = list.find((cr) => past(cr, seen));
      if (c && (x === undefined || past(x, c))) x = c;
    }
    if (x === undefined) break;
    let n = 0;
    let progress = -1;
    let complete = true;
    for (const list of lists) {
      const c = list.find((cr) => atOrPast(cr, x!));
      if (!c) {
        complete = false;
        break;
      }
      n += c.n;
      progress = Math.max(progress, c.t);
    }
    if (!complete) break;
    const isDue = n > at && ((seen.e >= 0 && x.e > seen.e) || x.i > seen.i);
    seen = { e: x.e, i: x.i };
    if (isDue) {
      at = n;
      due.push({ ...seen, at, progress });
    }
  }
  return { t: { ...t, seen, at }, due };
}

/** A partition's crossing that holds its rows at state x (its first at or past it). */
export const crossingAt = (list: readonly Crossing[], x: PointState): Crossing | undefined =>
  list.find((cr) => atOrPast(cr, x));

/**
 * The first crossing a partition must keep: that of the pending point (its matrix may be built
 * again after a restart), else the first not yet judged.
 */
export function keepFrom(list: readonly Crossing[], t: TrainerPoints): number {
  const pend = t.pending && crossingAt(list, t.pending);
  if (pend) return pend.c;
  return list.find((cr) => past(cr, t.seen))?.c ?? Infinity;
}
