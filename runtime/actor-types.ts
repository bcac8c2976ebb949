/**
 * The actor contract: its lifecycle states, the events it emits, the context a behavior gets,
 * the behavior itself and the handle `createActor` returns (runtime/actor.ts).
 */

import type { Observable } from "rxjs";

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
