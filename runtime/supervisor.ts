import { Subject, type Observable } from "rxjs";
import type { Actor } from "./actor.js";
import { backoffDelay } from "./backoff.js";

/** Restart policy, named after RxJS `retry({ count, delay, resetOnSuccess })`. */
export interface RestartOptions {
  /**
   * Max restarts within `period` ms before escalating. Default 5 within 60_000: the failure that
   * would need a 6th restart inside the window escalates instead (`count: 0` never restarts).
   */
  count?: number;
  period?: number;
  /**
   * Initial backoff ms, doubled per consecutive restart up to maxDelay (default 100 / 10_000).
   * No jitter (determinism).
   */
  delay?: number;
  maxDelay?: number;
  /**
   * Reset the backoff after the child has run this long without failing (default: true, meaning
   * 'after period'). With false, delays keep doubling until the supervisor is stopped.
   */
  resetOnSuccess?: boolean;
}

export type SupervisorEvent =
  /** `restarts`: consecutive restarts so far, i.e. before the one this failure may trigger. */
  | { type: "child-failed"; childId: string; error: unknown; restarts: number }
  /** Emitted once the fresh instance exists (child() returns it), before its start(). */
  | { type: "child-restarted"; childId: string; restarts: number; delayMs: number }
  /** `error` is the `EscalationError`; its `cause` is the child's last error. */
  | { type: "escalated"; childId: string; error: unknown };

/** Injected time (xstate SimulatedClock style): tests drive restarts without sleeping. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(h: unknown): void;
}

export interface Supervisor {
  /**
   * Starts a child built by `factory`; when it fails, builds a fresh one with `factory` after
   * backoff. A child that stops deliberately (its own stop()/drain()) is forgotten, not restarted.
   * Throws `DuplicateChildError` for a live id, `SupervisorStoppedError` once the supervisor ended.
   */
  supervise<M>(childId: string, factory: () => Actor<M>): void;
  /** The current live instance (changes after a restart), or undefined (e.g. during backoff). */
  child<M>(childId: string): Actor<M> | undefined;
  /**
   * Stops a child and forgets it: its live instance is stopped, a restart pending in backoff is
   * cancelled, and the id may be supervised again. Unknown ids are ignored.
   */
  unsupervise(childId: string): Promise<void>;
  /** Hot; completes when the supervisor ends. */
  readonly events$: Observable<SupervisorEvent>;
  /** Stops all children (stop) and cancels pending restarts. */
  stop(): Promise<void>;
  /** Drains all children (failures during the drain are not restarted) and cancels pending restarts. */
  drain(): Promise<void>;
  /**
   * Resolves when every current child is running (awaits their start()), following restarts of
   * children whose start failed. Rejects with the `EscalationError` on escalation, or with
   * `SupervisorStoppedError` if the supervisor is stopped first.
   */
  ready(): Promise<void>;
  /**
   * Resolves (never rejects) when the supervisor stops, or with the Error when it escalates
   * (escalation stops all children and calls onEscalate).
   */
  closed(): Promise<void | Error>;
}

export interface SupervisorOptions {
  id: string;
  restart?: RestartOptions;
  /** Injected time: defaults to real setTimeout/Date.now. Tests pass a fake. */
  clock?: Clock;
  onEscalate?: (error: Error, childId: string) => void;
  /** Where errors nobody else can handle go (e.g. a throwing onEscalate). */
  reporter?: (error: unknown, id: string) => void;
}

/** A child failed more often than the restart policy allows; `cause` is its last error. */
export class EscalationError extends Error {
  override readonly name = "EscalationError";
  readonly supervisorId: string;
  readonly childId: string;
  constructor(supervisorId: string, childId: string, message: string, options: { cause: unknown }) {
    super(message, options);
    this.supervisorId = supervisorId;
    this.childId = childId;
  }
}

/** supervise() was called with the id of a child that is still supervised. */
export class DuplicateChildError extends Error {
  override readonly name = "DuplicateChildError";
  readonly childId: string;
  constructor(supervisorId: string, childId: string) {
    super(`supervisor ${supervisorId} already supervises a child ${childId}`);
    this.childId = childId;
  }
}

/** The supervisor has stopped, drained or escalated: it takes no new children and starts none. */
export class SupervisorStoppedError extends Error {
  override readonly name = "SupervisorStoppedError";
  readonly supervisorId: string;
  constructor(supervisorId: string) {
    super(`supervisor ${supervisorId} is stopped`);
    this.supervisorId = supervisorId;
  }
}

const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

const defaultReporter = (error: unknown, id: string): void => {
  console.error(`[supervisor ${id}]`, error);
};

interface ChildRecord {
  readonly id: string;
  readonly factory: () => Actor<unknown>;
  /** The live instance; undefined while a restart is pending. */
  actor: Actor<unknown> | undefined;
  /** Consecutive restarts: the backoff exponent. */
  restarts: number;
  /** When each restart within the current `period` happened: the escalation window. */
  window: number[];
  startedAt: number;
  timer: { handle: unknown } | undefined;
  /** ready() callers waiting for the next instance (or for the end). */
  waiters: (() => void)[];
}

export function createSupervisor(options: SupervisorOptions): Supervisor {
  const { id } = options;
  const clock = options.clock ?? realClock;
  const reporter = options.reporter ?? defaultReporter;
  const count = options.restart?.count ?? 5;
  const period = options.restart?.period ?? 60_000;
  const backoff = {
    delay: options.restart?.delay ?? 100,
    maxDelay: options.restart?.maxDelay ?? 10_000,
  };
  const resetOnSuccess = options.restart?.resetOnSuccess ?? true;

  const children = new Map<string, ChildRecord>();
  const events = new Subject<SupervisorEvent>();
  const events$ = events.asObservable();

  let ending = false;
  let endError: EscalationError | undefined;
  let endPromise: Promise<void> | undefined;
  let resolveClosed!: (value: void | Error) => void;
  const closedPromise = new Promise<void | Error>((resolve) => {
    resolveClosed = resolve;
  });

  const report = (error: unknown): void => {
    try {
      reporter(error, id);
    } catch {
      // Nowhere left to send it.
    }
  };

  const wake = (record: ChildRecord): void => {
    const list = record.waiters;
    record.waiters = [];
    for (const resolve of list) resolve();
  };

  const cancelRestart = (record: ChildRecord): void => {
    if (record.timer === undefined) return;
    clock.clearTimeout(record.timer.handle);
    record.timer = undefined;
  };

  /** Builds and starts an instance; `onBuilt` runs once child() returns it, before start(). */
  const spawn = (record: ChildRecord, onBuilt?: () => void): void => {
    record.startedAt = clock.now();
    let actor: Actor<unknown>;
    try {
      actor = record.factory();
    } catch (error) {
      // A factory that cannot build is a failing child: same backoff, same escalation.
      onFailure(record, error);
      return;
    }
    record.actor = actor;
    onBuilt?.();
    // Failures (including a throwing behavior.start) arrive through closed().
    actor.start().catch(() => undefined);
    void actor.closed().then((result) => onClosed(record, actor, result));
    wake(record);
  };

  const onClosed = (record: ChildRecord, actor: Actor<unknown>, result: void | Error): void => {
    if (ending || record.actor !== actor) return;
    if (result === undefined) {
      // Stopped on purpose: not ours to bring back.
      children.delete(record.id);
      wake(record);
      return;
    }
    onFailure(record, result);
  };

  const onFailure = (record: ChildRecord, error: unknown): void => {
    record.actor = undefined;
    const now = clock.now();
    if (resetOnSuccess && now - record.startedAt >= period) record.restarts = 0;
    record.window = record.window.filter((at) => now - at < period);
    events.next({ type: "child-failed", childId: record.id, error, restarts: record.restarts });
    if (record.window.length >= count) {
      void escalate(record, error, record.window.length + 1);
      return;
    }
    record.window.push(now);
    const delayMs = backoffDelay(record.restarts, backoff);
    record.restarts++;
    const restarts = record.restarts;
    record.timer = {
      handle: clock.setTimeout(() => {
        record.timer = undefined;
        if (ending) return;
        spawn(record, () => {
          events.next({ type: "child-restarted", childId: record.id, restarts, delayMs });
        });
      }, delayMs),
    };
  };

  /** Ends the supervisor: cancels restarts, ends every child with `endChild`, settles closed(). */
  const end = (
    endChild: (actor: Actor<unknown>) => Promise<void>,
    error?: EscalationError,
  ): Promise<void> => {
    if (endPromise !== undefined) return endPromise;
    ending = true;
    endError = error;
    const records = [...children.values()];
    for (const record of records) cancelRestart(record);
    endPromise = (async () => {
      await Promise.all(
        records.map((record) => (record.actor === undefined ? undefined : endChild(record.actor))),
      );
      if (error !== undefined && options.onEscalate !== undefined) {
        try {
          options.onEscalate(error, error.childId);
        } catch (onEscalateError) {
          report(onEscalateError);
        }
      }
      events.complete();
      for (const record of records) wake(record);
      resolveClosed(error);
    })();
    return endPromise;
  };

  const escalate = (record: ChildRecord, cause: unknown, failures: number): Promise<void> => {
    const error = new EscalationError(
      id,
      record.id,
      `supervisor ${id}: child ${record.id} failed ${failures} times within ${period} ms ` +
        `(at most ${count} restarts allowed)`,
      { cause },
    );
    events.next({ type: "escalated", childId: record.id, error });
    return end((actor) => actor.stop(), error);
  };

  const whenRunning = async (record: ChildRecord): Promise<void> => {
    for (;;) {
      if (endError !== undefined) throw endError;
      if (ending) throw new SupervisorStoppedError(id);
      if (children.get(record.id) !== record) return;
      const actor = record.actor;
      if (actor === undefined) {
        await new Promise<void>((resolve) => record.waiters.push(resolve));
        continue;
      }
      try {
        await actor.start();
        return;
      } catch {
        // By the time closed() resolves, onClosed has decided: restart pending, forgotten or ended.
        await actor.closed();
      }
    }
  };

  let draining = false;

  return {
    events$,
    supervise<M>(childId: string, factory: () => Actor<M>): void {
      if (ending) throw new SupervisorStoppedError(id);
      if (children.has(childId)) throw new DuplicateChildError(id, childId);
      const record: ChildRecord = {
        id: childId,
        factory,
        actor: undefined,
        restarts: 0,
        window: [],
        startedAt: clock.now(),
        timer: undefined,
        waiters: [],
      };
      children.set(childId, record);
      spawn(record);
    },
    child<M>(childId: string): Actor<M> | undefined {
      return children.get(childId)?.actor as Actor<M> | undefined;
    },
    async unsupervise(childId: string): Promise<void> {
      const record = children.get(childId);
      if (record === undefined) return;
      children.delete(childId);
      cancelRestart(record);
      const actor = record.actor;
      record.actor = undefined; // its closed() is no longer ours to act on
      wake(record);
      await actor?.stop();
    },
    stop() {
      if (draining && endError === undefined) {
        // Cut a drain short: stopping the children makes their drains end now.
        for (const record of children.values()) void record.actor?.stop();
      }
      return end((actor) => actor.stop());
    },
    drain() {
      if (!ending) draining = true;
      return end((actor) => actor.drain());
    },
    async ready() {
      await Promise.all([...children.values()].map(whenRunning));
    },
    closed: () => closedPromise,
  };
}
