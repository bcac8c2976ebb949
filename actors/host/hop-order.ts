/**
 * The order of a stage's input hops. Every hop says which position it covers
 * (`upTo`) and which one its subject's previous hop covered (`prev`, see envelope.ts). A reader
 * applies a hop only when it follows on from what it has applied (`prev` <= its own position):
 * a hop lost in flight and re-sent after newer ones (a publish retried after a timeout, a
 * connection lost with a dying node) would otherwise be dropped as covered by the newer ones,
 * and its records lost. Such newer hops wait here until the missing one arrives.
 *
 * What waits is in memory only: the host's snapshot position stays before the first hop
 * waiting, so a restarted instance reads it again.
 */

export interface WaitingHop<T> {
  item: T;
  /** Input stream sequence of the hop message. */
  seq: number;
  upTo: number;
  prev: number;
  /** When it started waiting (ms, processing time). */
  since: number;
}

export interface HopOrder<T> {
  /**
   * What to do with a hop read at input sequence `seq`, given the position applied so far:
   * `duplicate` (covered), `apply` (follows on), or `wait` (kept here until it follows on).
   */
  offer(item: T, seq: number, upTo: number, prev: number, applied: number): OfferResult;
  /**
   * The next waiting hop that follows on from `applied`, removed; those `applied` covers are
   * dropped on the way (counted in the result's `duplicates`).
   */
  next(applied: number): { hop: WaitingHop<T> | undefined; duplicates: number };
  /** The lowest input sequence waiting, if any: the snapshot position must stay before it. */
  firstSeq(): number | undefined;
  /** The hop waiting longest, if any. */
  oldest(): WaitingHop<T> | undefined;
  readonly size: number;
}

export type OfferResult = "duplicate" | "apply" | "wait";

export function createHopOrder<T>(now: () => number = Date.now): HopOrder<T> {
  // Few at a time (at most what the consumer lets in flight): kept sorted by upTo.
  const waiting: WaitingHop<T>[] = [];
  return {
    offer(item, seq, upTo, prev, applied) {
      if (upTo <= applied) return "duplicate";
      if (prev <= applied) return "apply";
      const hop = { item, seq, upTo, prev, since: now() };
      let at = waiting.length;
      while (at > 0 && waiting[at - 1]!.upTo > upTo) at--;
      waiting.splice(at, 0, hop);
      return "wait";
    },
    next(applied) {
      let duplicates = 0;
      while (waiting.length > 0 && waiting[0]!.upTo <= applied) {
        waiting.shift();
        duplicates++;
      }
      // The lowest that follows on (hops of a restarted producer chain on from its snapshot, so
      // a later hop may follow on where an earlier one of the old chain does not).
      const at = waiting.findIndex((h) => h.prev <= applied);
      if (at < 0) return { hop: undefined, duplicates };
      const [hop] = waiting.splice(at, 1);
      return { hop, duplicates };
    },
    firstSeq() {
      let min: number | undefined;
      for (const h of waiting) if (min === undefined || h.seq < min) min = h.seq;
      return min;
    },
    oldest() {
      let o: WaitingHop<T> | undefined;
      for (const h of waiting) if (o === undefined || h.since < o.since) o = h;
      return o;
    },
    get size() {
      return waiting.length;
    },
  };
}
