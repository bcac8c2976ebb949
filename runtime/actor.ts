import { Subject } from "rxjs";
import { ActorFailedError, ActorStoppedError } from "./actor-errors.js";
import { sliceSpent, sliceWork, yieldToLoop } from "./actor-slice.js";
import type { Actor, ActorContext, ActorEvent, ActorOptions, ActorStatus } from "./actor-types.js";

/**
 * createActor: one actor's mailbox, its processing loop (sliced by actor-slice.ts) and its
 * lifecycle from start to stop, drain or failure. The contract is actor-types.ts, the errors
 * actor-errors.ts; both are re-exported here.
 */

export type {
  Actor,
  ActorContext,
  ActorEvent,
  ActorOptions,
  ActorStatus,
  Behavior,
} from "./actor-types.js";
export { ActorFailedError, ActorStoppedError } from "./actor-errors.js";
export { ACTOR_SLICE_MS } from "./actor-slice.js";

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

const defaultReporter = (error: unknown, actorId: string): void => {
  console.error(`[actor ${actorId}]`, error);
};

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== undefined &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function"
  );
}

// Compact the queue only once this many consumed slots pile up, so a steady stream costs no copies.
const COMPACT_AT = 4096;

export function createActor<M>(options: ActorOptions<M>): Actor<M> {
  const { id, behavior } = options;
  const reporter = options.reporter ?? defaultReporter;
  const events = new Subject<ActorEvent>();
  const events$ = events.asObservable();
  const controller = new AbortController();

  let status: ActorStatus = "starting";
  // Mailbox: an array consumed from `head`; `seq` numbers let sendAndWait find its message
  // without allocating anything per plain send().
  let queue: (M | undefined)[] = [];
  let head = 0;
  let enqueuedSeq = 0;
  let processedSeq = 0;
  const waiters = new Map<number, Waiter>();
  let dropped = 0;

  let startPromise: Promise<void> | undefined;
  let drainRequested = false;
  let ending = false;
  // Boxed so that `undefined` can be a failure too.
  let failure: { value: unknown } | undefined;
  let endPromise: Promise<void> | undefined;
  // `busy`: the loop is running or an async receive is in flight; `scheduled`: a loop is queued.
  let busy = false;
  let scheduled = false;
  let inFlight: PromiseLike<unknown> | undefined;
  let inFlightSeq = -1;
  let idleWaiters: (() => void)[] = [];

  let resolveClosed!: (value: void | Error) => void;
  const closedPromise = new Promise<void | Error>((resolve) => {
    resolveClosed = resolve;
  });

  const report = (error: unknown): void => {
    try {
      reporter(error, id);
    } catch {
      // A broken reporter must not take the actor down with it.
    }
  };

  const isAbortNoise = (error: unknown): boolean =>
    error === controller.signal.reason || (error instanceof Error && error.name === "AbortError");

  const setStatus = (next: ActorStatus): void => {
    status = next;
    events.next({ type: "status", actorId: id, status: next });
  };

  const settle = (seq: number, error?: unknown, failed = false): void => {
    if (waiters.size === 0) return;
    const waiter = waiters.get(seq);
    if (waiter === undefined) return;
    waiters.delete(seq);
    if (failed) waiter.reject(error);
    else waiter.resolve();
  };

  const isIdle = (): boolean => head >= queue.length && !busy;

  const flushIdle = (): void => {
    if (idleWaiters.length === 0) return;
    const list = idleWaiters;
    idleWaiters = [];
    for (const resolve of list) resolve();
  };

  const dropPending = (reason: Error): void => {
    const firstPending = processedSeq;
    dropped += queue.length - head;
    queue = [];
    head = 0;
    processedSeq = enqueuedSeq;
    // A message already handed to receive keeps its waiter: it settles when its receive does.
    for (const [seq, waiter] of waiters) {
      if (seq < firstPending) continue;
      waiters.delete(seq);
      waiter.reject(reason);
    }
  };

  /** Why messages are refused from now on. */
  const refusal = (): Error =>
    failure === undefined
      ? new ActorStoppedError(id, `actor ${id} is ${ending ? "stopped" : status}`)
      : new ActorFailedError(id, { cause: failure.value });

  const finish = (error?: { value: unknown }): Promise<void> => {
    if (endPromise !== undefined) return endPromise;
    ending = true;
    failure = error;
    const asError =
      error === undefined
        ? undefined
        : error.value instanceof Error
          ? error.value
          : new ActorFailedError(id, { cause: error.value });
    dropPending(refusal());
    controller.abort(asError ?? new ActorStoppedError(id));
    endPromise = (async () => {
      // Never run behavior.stop() inside (or concurrently with) a start/receive: wait for it. The
      // await also moves cleanup out of a synchronous receive that called stop()/fail().
      await Promise.resolve(inFlight).then(undefined, () => undefined);
      if (behavior.stop !== undefined) {
        try {
          await behavior.stop();
        } catch (stopError) {
          report(stopError);
        }
      }
      for (const waiter of waiters.values()) waiter.reject(refusal());
      waiters.clear();
      if (error !== undefined) {
        events.next({ type: "error", actorId: id, error: error.value });
        setStatus("failed");
      } else {
        setStatus("stopped");
      }
      events.complete();
      flushIdle();
      resolveClosed(asError);
    })();
    return endPromise;
  };

  const fail = (error: unknown): void => {
    if (ending) {
      // Already on its way out: a late error (often the abort we caused) is not a new failure.
      if (!isAbortNoise(error)) report(error);
      return;
    }
    void finish({ value: error });
  };

  const afterEmpty = (): void => {
    if (ending) return;
    if (status === "draining") {
      void finish();
      return;
    }
    flushIdle();
  };

  const onAsyncDone = (): void => {
    inFlight = undefined;
    busy = false;
    settle(inFlightSeq);
    if (!ending) runLoop(true);
  };

  const onAsyncError = (error: unknown): void => {
    inFlight = undefined;
    busy = false;
    settle(inFlightSeq, error, true);
    fail(error);
  };

  /** Runs the loop again after the I/O that waits (its slice of this turn is spent). */
  const yieldLoop = (): void => {
    scheduled = true;
    yieldToLoop(runYielded);
  };
  /** The loop as a callback for a yielded loop: its first message runs (`continued` false). */
  const runYielded = (): void => runLoop();
  /** The loop as a callback for a new burst: it waits if this turn's slice is spent. */
  const runBurst = (): void => runLoop(true);

  /**
   * `continued`: a new burst, or after an async receive settled: the turn's slice may be spent,
   * and then the loop waits for the next slice. A new burst's first message used to run
   * whatever the slice said: the hops the nats client delivers to many stages in one read each
   * ran one message, and the loop held on for all of them (bench step 4b). Otherwise a yielded
   * loop, run by drainYielded: its first message runs, so each waiting actor gets its turn.
   */
  function runLoop(continued = false): void {
    scheduled = false;
    if (busy || ending) return;
    if (continued && head < queue.length && sliceSpent()) return yieldLoop();
    if (head >= COMPACT_AT && head * 2 >= queue.length) {
      queue = queue.slice(head);
      head = 0;
    }
    busy = true;
    while (head < queue.length) {
      const msg = queue[head] as M;
      queue[head] = undefined;
      head++;
      const seq = processedSeq++;
      let result: Promise<void> | void;
      const began = performance.now();
      try {
        result = behavior.receive(msg, ctx);
      } catch (error) {
        busy = false;
        settle(seq, error, true);
        fail(error);
        return;
      } finally {
        sliceWork(performance.now() - began);
      }
      if (isThenable(result)) {
        inFlight = result;
        inFlightSeq = seq;
        result.then(onAsyncDone, onAsyncError);
        return;
      }
      settle(seq);
      if (ending) break;
      if (head < queue.length && sliceSpent()) {
        busy = false;
        return yieldLoop();
      }
    }
    busy = false;
    if (head >= queue.length) {
      queue.length = 0;
      head = 0;
      afterEmpty();
    }
  }

  const schedule = (): void => {
    if (scheduled || busy || ending) return;
    if (status !== "running" && status !== "draining") return;
    scheduled = true;
    // One microtask per burst, not per message; send() never runs receive inline.
    queueMicrotask(runBurst);
  };

  const enqueue = (msg: M): number => {
    const seq = enqueuedSeq++;
    queue.push(msg);
    schedule();
    return seq;
  };

  const ctx: ActorContext<M> = {
    id,
    send(msg) {
      if (ending) {
        dropped++;
        return;
      }
      enqueue(msg);
    },
    fail,
    signal: controller.signal,
  };

  const accepts = (): boolean => !ending && status !== "draining";

  const runStart = async (): Promise<void> => {
    setStatus("starting");
    try {
      const result = behavior.start?.(ctx);
      if (isThenable(result)) {
        inFlight = result;
        await result;
      }
    } catch (error) {
      inFlight = undefined;
      if (ending) {
        if (!isAbortNoise(error)) report(error);
        throw new ActorStoppedError(id, `actor ${id} was stopped while starting`);
      }
      await finish({ value: error });
      throw error;
    }
    inFlight = undefined;
    if (ending) throw new ActorStoppedError(id, `actor ${id} was stopped while starting`);
    setStatus("running");
    if (drainRequested) setStatus("draining");
    if (head < queue.length) schedule();
    else afterEmpty();
  };

  return {
    id,
    events$,
    getStatus: () => status,
    send(msg) {
      if (!accepts()) {
        dropped++;
        return;
      }
      enqueue(msg);
    },
    sendAndWait(msg) {
      if (!accepts()) {
        dropped++;
        return Promise.reject(refusal());
      }
      return new Promise<void>((resolve, reject) => {
        waiters.set(enqueue(msg), { resolve, reject });
      });
    },
    mailboxDepth: () => queue.length - head,
    droppedCount: () => dropped,
    idle() {
      if (status === "stopped" || status === "failed" || (!ending && isIdle())) {
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    start() {
      if (startPromise === undefined) {
        startPromise = ending
          ? Promise.reject(new ActorStoppedError(id, `actor ${id} was stopped before it started`))
          : runStart();
      }
      return startPromise;
    },
    drain() {
      if (ending) return finish();
      if (startPromise === undefined) return finish();
      drainRequested = true;
      if (status === "running") {
        setStatus("draining");
        if (isIdle()) afterEmpty();
      }
      // While "starting", runStart moves to "draining" once running.
      return closedPromise.then(() => undefined);
    },
    stop: () => finish(),
    closed: () => closedPromise,
  };
}
