import { Subject, type Observable } from "rxjs";

/**
 * Lifecycle of an actor. An actor that has been created but not started reports `"starting"`;
 * `"stopped"` and `"failed"` are final.
 */
export type ActorStatus = "starting" | "running" | "draining" | "stopped" | "failed";

/** What an actor tells the outside world: metrics, logs and supervisors read these. */
export type ActorEvent =
  | { type: "status"; actorId: string; status: ActorStatus }
  /** Emitted right before the status `"failed"`. */
  | { type: "error"; actorId: string; error: unknown };

export interface ActorContext<M> {
  readonly id: string;
  /**
   * Enqueue a message to itself. Unlike `Actor.send`, this is still accepted while draining, so a
   * multi-step job the actor started finishes before it stops.
   */
  send(msg: M): void;
  /** Fail the actor from outside receive (e.g. a background consumer loop died). */
  fail(error: unknown): void;
  /** Aborted when the actor stops/fails: background loops watch it. */
  readonly signal: AbortSignal;
}

export interface Behavior<M> {
  /** Runs once before the first message; async allowed (load snapshot, open consumer). Throwing fails the actor. */
  start?(ctx: ActorContext<M>): Promise<void> | void;
  /**
   * Messages are processed strictly one at a time in mailbox order; a returned promise is awaited
   * before the next. Throwing (or rejecting) fails the actor.
   */
  receive(msg: M, ctx: ActorContext<M>): Promise<void> | void;
  /**
   * Cleanup on stop, drain end, or failure; called exactly once (also when the actor is stopped
   * before it ever started), after any in-flight `start`/`receive` has settled. Must not throw out:
   * errors go to the reporter.
   */
  stop?(): Promise<void> | void;
}

export interface Actor<M> {
  readonly id: string;
  /** Current status. */
  getStatus(): ActorStatus;
  /**
   * Typed events (status changes, errors) as a hot RxJS Observable; it completes after the final
   * status. Late subscribers do not get past events: read `getStatus()` first.
   */
  readonly events$: Observable<ActorEvent>;
  /**
   * Enqueue; messages sent before start() are kept and processed once running; messages sent
   * while draining or after stop/failure are dropped and counted (droppedCount()).
   */
  send(msg: M): void;
  /**
   * Enqueue and resolve when that message has been processed (reject if the actor fails/stops
   * before: `ActorStoppedError`, `ActorFailedError`, or the very error `receive` threw for it).
   * Useful for request/reply: the behavior resolves its own reply inside the message.
   */
  sendAndWait(msg: M): Promise<void>;
  mailboxDepth(): number;
  droppedCount(): number;
  /** Resolves when the mailbox is empty and nothing is in flight (or the actor is stopped/failed). */
  idle(): Promise<void>;
  /**
   * Starting twice is harmless (returns the same promise). Resolves when status is "running";
   * rejects if start() threw (status "failed" by then) or with `ActorStoppedError` if the actor was
   * stopped first.
   */
  start(): Promise<void>;
  /**
   * Processes everything already in the mailbox, then stops ("draining" -> "stopped"). New
   * messages from outside are dropped meanwhile. On an actor that was never started this is
   * `stop()`. Resolves once the actor has ended, however it ended (see `closed()`).
   */
  drain(): Promise<void>;
  /**
   * Stops now: pending mailbox messages are dropped (counted), signal aborted, behavior.stop()
   * called once an in-flight receive has settled. Idempotent; resolves when the actor has ended.
   */
  stop(): Promise<void>;
  /** Resolves (never rejects) when the actor ends: void on stop, the Error on failure. */
  closed(): Promise<void | Error>;
}

export interface ActorOptions<M> {
  id: string;
  behavior: Behavior<M>;
  /** Where errors nobody else can handle go (a failing behavior.stop(), errors after the end). */
  reporter?: (error: unknown, actorId: string) => void;
}

/** The actor no longer accepts or processes messages (stopped, draining, or stopped before start). */
export class ActorStoppedError extends Error {
  override readonly name = "ActorStoppedError";
  readonly actorId: string;
  constructor(actorId: string, message = `actor ${actorId} is stopped`) {
    super(message);
    this.actorId = actorId;
  }
}

/**
 * The actor failed; `cause` is what failed it. Also wraps non-Error failures for `closed()`. The
 * message says why (the cause's message): callers print `message` or `String(err)`, and "actor
 * watermark/0 failed" alone, in bench step 2, left nobody knowing why.
 */
export class ActorFailedError extends Error {
  override readonly name = "ActorFailedError";
  readonly actorId: string;
  constructor(actorId: string, options: { cause: unknown }) {
    super(`actor ${actorId} failed: ${reasonOf(options.cause)}`, options);
    this.actorId = actorId;
  }
}

/** A failure's cause as one line of text, whatever was thrown. */
function reasonOf(cause: unknown): string {
  if (cause instanceof Error) return cause.message || cause.name;
  if (typeof cause === "string") return cause;
  try {
    return JSON.stringify(cause) ?? String(cause);
  } catch {
    return String(cause);
  }
}

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

/**
 * How long, in ms, actors may run back to back in one turn of the event loop before they yield to
 * it. Mailboxes drain in microtasks (and an async receive's continuation is one): with a backlog
 * they never gave the loop back, so a gRPC call or a timer waited behind all of it (bench step 4b:
 * the loop held 1.5 s at a time while 10k events/s were ingested). Past the budget, the actor
 * waits in `yielded` for the loop's next check phase (setImmediate), where one slice is shared
 * by the waiting actors in turn: I/O that came meanwhile runs first, and many backlogged actors
 * do not each take a message per turn (with ~30 stage actors that held the loop ~0.4 s).
 */
export const ACTOR_SLICE_MS = 4;
/** When the current slice began (performance.now()); -1 between slices. */
let sliceStart = -1;
const endSlice = (): void => {
  sliceStart = -1;
};
/** Loops of actors that yielded, first come first run, and whether a drain is queued. */
const yielded: (() => void)[] = [];
let draining = false;
/**
 * One slice of the yielded actors' loops per turn of the event loop: the first always runs (each
 * gets its turn, none starves), the others while the slice lasts; those left wait for the next.
 */
const drainYielded = (): void => {
  draining = false;
  sliceStart = performance.now();
  setImmediate(endSlice);
  const waiting = yielded.length;
  for (let x = 0; x < waiting; x++) {
    if (x > 0 && performance.now() - sliceStart >= ACTOR_SLICE_MS) break;
    yielded.shift()!();
  }
  if (yielded.length > 0 && !draining) {
    draining = true;
    setImmediate(drainYielded);
  }
};
/** Queues an actor's loop to run again in a later turn of the event loop. */
const yieldToLoop = (loop: () => void): void => {
  yielded.push(loop);
  if (!draining) {
    draining = true;
    setImmediate(drainYielded);
  }
};

/** True once the actors of this turn of the loop have run for ACTOR_SLICE_MS. */
const sliceSpent = (): boolean => {
  const now = performance.now();
  if (sliceStart < 0) {
    sliceStart = now;
    // The slice ends with this turn of the loop: the next turn's actors get a budget of their own.
    setImmediate(endSlice);
    return false;
  }
  return now - sliceStart >= ACTOR_SLICE_MS;
};

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
  /** The loop as a callback for a new burst or a yielded loop (`continued` false). */
  const runYielded = (): void => runLoop();

  /**
   * `continued`: after an async receive settled (the loop's turn may be spent). Otherwise a new
   * burst or a yielded loop: its first message runs whatever the slice says, so a burst always
   * starts in the turn it was sent in (a stale slice start never delays it).
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
      try {
        result = behavior.receive(msg, ctx);
      } catch (error) {
        busy = false;
        settle(seq, error, true);
        fail(error);
        return;
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
    queueMicrotask(runYielded);
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
