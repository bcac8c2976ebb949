/**
 * Questions to a child process and their answers, matched by id. A question not answered within
 * `waitMs` resolves with the last answer given (or `initial`), so a caller such as /metrics never
 * loses what the child reported because one answer was late.
 *
 * The wait gives the event loop one poll phase before it gives up: after a held loop, timers run
 * before the I/O that may already carry the answer (the same trap as the publisher's PubAck
 * timeouts, connectors/nats/publisher.ts). Without it, a main process busy for longer than the
 * wait dropped the parse child's metrics from a scrape whose answer had arrived in time.
 */
export interface ChildReplies<T> {
  /** Sends a question under a fresh id; resolves with its answer or, late, the last one. */
  ask(send: (id: number) => void): Promise<T>;
  /** An answer from the child. */
  answer(id: number, value: T): void;
  /** The child is gone: every open question gets the last answer. */
  abandon(): void;
  /** The last answer given (or `initial`). */
  last(): T;
}

export function createChildReplies<T>(initial: T, waitMs: number): ChildReplies<T> {
  const open = new Map<number, (v: T | undefined) => void>();
  let last = initial;
  let nextId = 0;
  return {
    ask(send) {
      const id = ++nextId;
      return new Promise<T>((resolve) => {
        const timer = setTimeout(() => setImmediate(() => open.get(id)?.(undefined)), waitMs);
        open.set(id, (v) => {
          clearTimeout(timer);
          open.delete(id);
          if (v !== undefined) last = v;
          resolve(last);
        });
        send(id);
      });
    },
    answer(id, value) {
      open.get(id)?.(value);
    },
    abandon() {
      for (const settle of [...open.values()]) settle(undefined);
    },
    last: () => last,
  };
}
