/**
 * A bounded reorder buffer: rows go in in file order and come out in event-time order (ties in
 * file order). While the file has at most `capacity` rows, that is a full sort in memory; past
 * it, the buffer is a sort with a bound: a row is released once `capacity` newer rows of the file
 * wait behind it, so a row more than `capacity` rows away from its place in time may come out
 * after a later event. Such rows are counted (`outOfOrder`), never dropped.
 */
export interface ReorderBuffer<T> {
  /** Adds a row; returns the rows it releases (none until the buffer is full). */
  push(ts: number, value: T): T[];
  /** The rows still held, in time order. */
  drain(): T[];
  /** Rows released behind an event time already released. */
  readonly outOfOrder: number;
  /** Rows held now. */
  readonly size: number;
}

interface Entry<T> {
  ts: number;
  seq: number;
  value: T;
}

export function createReorderBuffer<T>(capacity: number): ReorderBuffer<T> {
  const heap: Entry<T>[] = [];
  let seq = 0;
  let released = -Infinity;
  let outOfOrder = 0;
  const less = (a: Entry<T>, b: Entry<T>) => a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq);

  const up = (i: number) => {
    const e = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(e, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = e;
  };
  const down = (i: number) => {
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && less(heap[c + 1]!, heap[c]!)) c++;
      if (!less(heap[c]!, e)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = e;
  };
  const pop = (): T => {
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      down(0);
    }
    if (top.ts < released) outOfOrder++;
    else released = top.ts;
    return top.value;
  };

  return {
    push(ts, value) {
      heap.push({ ts, seq: seq++, value });
      up(heap.length - 1);
      const out: T[] = [];
      while (heap.length > capacity) out.push(pop());
      return out;
    },
    drain() {
      const out: T[] = [];
      while (heap.length > 0) out.push(pop());
      return out;
    },
    get outOfOrder() {
      return outOfOrder;
    },
    get size() {
      return heap.length;
    },
  };
}

/** An event's time in epoch ms (ISO text or epoch millis), NaN when it has none. */
export function eventTimeOf(eventTs: unknown): number {
  if (typeof eventTs === "number") return eventTs;
  if (typeof eventTs === "string") {
    if (/^\d+$/.test(eventTs)) return Number(eventTs);
    return Date.parse(eventTs);
  }
  return NaN;
}
