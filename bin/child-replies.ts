/**
 * Questions to a child process and their answers, matched by id. A question not answered within
 * `waitMs` resolves with `none`: a late child's series are missing from that scrape rather than
 * served as current from an older answer (a busy ingest process's frozen positions once read as
 * "caught up" to the bench, while its stages were still far behind).
 *
 * The wait gives the event loop one poll phase before it gives up: after a held loop, timers run
 * before the I/O that may already carry the answer (the same trap as the publisher's PubAck
 * timeouts, connectors/nats/publisher.ts). Without it, a main process busy for longer than the
 * wait dropped the parse child's metrics from a scrape whose answer had arrived in time.
 */
export interface ChildReplies<T> {
  /** Sends a question under a fresh id; resolves with its answer, or `none` if late. */
  ask(send: (id: number) => void): Promise<T>;
  /** An answer from the child. */
  answer(id: number, value: T): void;
  /** The child is gone: every open question gets `none`. */
  abandon(): void;
}

export function createChildReplies<T>(none: T, waitMs: number): ChildReplies<T> {
  const open = new Map<number, (v: T) => void>();
  let nextId = 0;
  return {
    ask(send) {
      const id = ++nextId;
      return new Promise<T>((resolve) => {
        const timer = setTimeout(() => setImmediate(() => open.get(id)?.(none)), waitMs);
        open.set(id, (v) => {
          clearTimeout(timer);
          open.delete(id);
          resolve(v);
        });
        send(id);
      });
    },
    answer(id, value) {
      open.get(id)?.(value);
    },
    abandon() {
      for (const settle of [...open.values()]) settle(none);
    },
  };
}
