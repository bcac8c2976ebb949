import {
  interval,
  map,
  merge,
  Subject,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from "rxjs";

/**
 * The stage contract (DESIGN §3): a stage's logic is an RxJS pipeline from typed input batches to
 * typed outputs on named ports. It knows no transport, no subject and no wire format: a host
 * decodes its input, hands it batches, and maps its ports to wherever the topology says.
 *
 *     const counter = defineStage({
 *       name: "counter",
 *       input: port<{ k: string }>(),
 *       ports: { counts: port<{ k: string; n: number }>() },
 *       create: (ctx: StageContext<{ step: number }>) => (batches$) =>
 *         batches$.pipe(map((b) => ({ counts: b.records.map((r) => ({ k: r.k, n: ctx.settings.step })) }))),
 *     });
 *
 * RxJS carries batches, so its cost is per batch; a hot per-record loop lives inside one operator.
 */

/** A typed port: a name in `ports` and the type of the records that go through it. */
export interface Port<T> {
  /** Never set: carries the record type. */
  readonly __record?: T;
}

/** Declares a port (or the input) carrying records of type T. */
export const port = <T>(): Port<T> => ({});

/** Ports by name. */
export type PortMap = Record<string, Port<unknown>>;

/** The record type of a port. */
export type RecordOf<P> = P extends Port<infer T> ? T : never;

/**
 * What a stage emits for a batch: records per port, in order within a port. A port left out (or
 * empty) got nothing from this batch.
 */
export type StageOutputs<P extends PortMap> = {
  readonly [K in keyof P]?: readonly RecordOf<P[K]>[];
};

/**
 * One input batch. Positions and progress are the host's bookkeeping, handed in so that stages do
 * not redo it (Kafka Streams' stream time).
 */
export interface InputBatch<R> {
  /** Records in input order. Read-only: other readers of the same input may share them. */
  readonly records: readonly R[];
  /**
   * The input positions the batch covers: after `from`, up to and including `upTo`. Records at
   * or below `from` were processed before a restart (a stage whose records carry their own
   * position drops those).
   */
  readonly position: { readonly from: number; readonly upTo: number };
  /**
   * Event-time progress (the highest event time over the whole input so far, -1 before any):
   * `from` before this batch, `to` with it. Never decreases; equal when the batch did not move it
   * (an idle partition still gets batches that move it, without records).
   */
  readonly progress: { readonly from: number; readonly to: number };
  /**
   * Set on a processing-time trigger batch (a stage with `trigger: "processing-time"`): no
   * records, position and progress where the last batch left them. It comes every T ms of the
   * host's scheduler whether input arrives or not, so a stage acts while its input is quiet.
   */
  readonly trigger?: "time";
}

/** The operator a stage is made of. */
export type StageOperator<In, P extends PortMap> = OperatorFunction<
  InputBatch<In>,
  StageOutputs<P>
>;

/** A named map of the stage's per-key state (persisted by the host with the input position). */
export interface StateMap<V> {
  get(key: string): V | undefined;
  has(key: string): boolean;
  /** Values are immutable once set: set a new object to change one. */
  set(key: string, value: V): void;
  delete(key: string): void;
  readonly size: number;
  keys(): IterableIterator<string>;
  entries(): IterableIterator<[string, V]>;
  /**
   * A text map's value as its JSON text, without parsing it or keeping it parsed (a scan of a
   * loaded map that needs a few bytes of each value). Optional: a map without it is read by `get`.
   */
  peekText?(key: string): string | undefined;
  /**
   * The value, without keeping it decoded (a stored-form map's get keeps what it decodes until
   * the next snapshots): for a scan of every key that reads each once (a training's read of every
   * rating row). The value must not be changed. Optional: a map without it is read by `get`.
   */
  peek?(key: string): V | undefined;
  /**
   * Indexes up to `records` more of a lazily loaded map's keys and returns how many are left (0:
   * all). A walk of every key (`keys`, `size`) indexes all that are left at once: a restore that
   * walks a large map calls this in slices first, between turns of the event loop. Optional: a
   * map without it has nothing left to index.
   */
  settle?(records: number): number;
}

/**
 * How a map's values are persisted when JSON is too slow or too big for them: as bytes. Values
 * are kept as their bytes until read (decoded on first `get`, like a text map's), and a value
 * written since the last snapshot is encoded again at the next one. Live values must never be
 * strings or Uint8Arrays (those are the stored forms).
 */
export interface ValueCodec<V> {
  encode(value: V): Uint8Array;
  /**
   * A stored value back: its bytes, or what the map held before it had a codec (a text map's
   * JSON text, a plain map's JSON value), so snapshots already on disk still load.
   */
  decode(stored: unknown): V;
}

/** A named single value of the stage (a clock, the end of the last final window). */
export interface StateValue<V> {
  get(): V | undefined;
  /** JSON-serialisable. */
  set(value: V): void;
}

/**
 * The stage's state: named maps and single values. The host snapshots them together at one input
 * position (values go in the snapshot's metadata); the stage keeps no other truth.
 */
export interface StateMaps {
  /**
   * With `text`, values are kept as JSON text until read (maps read for few keys load faster);
   * with `codec`, as the codec's bytes (see {@link ValueCodec}).
   */
  map<V>(name: string, options?: { text?: boolean; codec?: ValueCodec<V> }): StateMap<V>;
  value<V>(name: string): StateValue<V>;
}

export interface StageContext<S> {
  /** The stage's name (for messages). */
  readonly name: string;
  readonly state: StateMaps;
  readonly settings: S;
  /**
   * The clock and timers of the stage (RxJS `bufferTime(span, null, max, scheduler)` and the
   * like), so a marble test runs a 5-minute window in virtual time.
   */
  readonly scheduler: SchedulerLike;
  /** Adds to a named count that the host keeps exact with the input position. */
  count(name: string, n?: number): void;
}

/** What `create` may return when the stage has more than an operator. */
export interface StageLogic<In, P extends PortMap, V> {
  readonly operator: StageOperator<In, P>;
  /** Read-only queries on the live state, answered between batches. */
  readonly view: V;
  /**
   * Rebuilding of in-memory indexes from loaded state, one slice per step: a host gives the event
   * loop back between steps, and pushes no batch before the last.
   */
  readonly restore?: Iterator<void>;
}

export interface StageDefinition<In, P extends PortMap, S, V> {
  readonly name: string;
  /** The input's record type (a marker, as for ports). */
  readonly input: Port<In>;
  readonly ports: P;
  /**
   * "processing-time": the host also pushes a trigger batch (`trigger: "time"`) every T ms of
   * processing time on its scheduler, T being its setting (trending's TRENDING_TRIGGER, parse's
   * broadcast period): what a stage emits on a clock rather than on input (top lists of open
   * windows, heartbeats, idle markers) comes from those batches, inside the stream, never from a
   * timer of its own.
   */
  readonly trigger?: "processing-time";
  /** Called once per run (after each load of the state): the operator, its closure the caches. */
  create(ctx: StageContext<S>): StageOperator<In, P> | StageLogic<In, P, V>;
}

/** Checks and returns a stage definition (types inferred from `input`, `ports` and `create`). */
export function defineStage<In, P extends PortMap, S, V = undefined>(
  def: StageDefinition<In, P, S, V>,
): StageDefinition<In, P, S, V> {
  if (!/^[a-z][a-z0-9-]*$/.test(def.name)) throw new TypeError(`bad stage name ${def.name}`);
  for (const name of Object.keys(def.ports))
    if (!/^[a-z][a-zA-Z0-9-]*$/.test(name))
      throw new TypeError(`stage ${def.name}: bad port name ${JSON.stringify(name)}`);
  return Object.freeze({ ...def });
}

/** The operator, view and restore of a stage on `ctx`, whichever form `create` returned. */
export function createStageLogic<In, P extends PortMap, S, V>(
  def: StageDefinition<In, P, S, V>,
  ctx: StageContext<S>,
): StageLogic<In, P, V> {
  const made = def.create(ctx);
  return typeof made === "function" ? { operator: made, view: undefined as V } : made;
}

/**
 * The input with a processing-time trigger batch every `everyMs` on `scheduler`, as a host feeds
 * a stage with `trigger: "processing-time"`: for drivers and marble tests.
 */
export function withProcessingTime<R>(
  batches$: Observable<InputBatch<R>>,
  everyMs: number,
  scheduler: SchedulerLike,
): Observable<InputBatch<R>> {
  let upTo = 0;
  let progress = -1;
  const trigger = (): InputBatch<R> => ({
    records: [],
    position: { from: upTo, upTo },
    progress: { from: progress, to: progress },
    trigger: "time",
  });
  return merge(
    batches$.pipe(
      map((b) => {
        upTo = b.position.upTo;
        progress = b.progress.to;
        return b;
      }),
    ),
    interval(everyMs, scheduler).pipe(map(trigger)),
  );
}

/** A stage whose operator broke the contract (emitted outside a batch, or completed). */
export class StageContractError extends Error {
  override readonly name = "StageContractError";
}

/**
 * A running stage, driven synchronously: `push` returns once everything the operator emits for
 * the batch has gone to `onOutput`, so a host's outputs for an input are complete when its
 * handler returns (what makes replays exact).
 */
export interface StageRun<In, V> {
  readonly view: V;
  /** Runs the rest of the restore in one go (for hosts that need not give the loop back). */
  restoreAll(): void;
  /** The restore's next slice; false once done. */
  restoreStep(): boolean;
  /** Pushes a batch. Throws what the operator threw; the run is then dead and throws again. */
  push(batch: InputBatch<In>): void;
  /** Unsubscribes the operator. */
  stop(): void;
}

/**
 * Subscribes a stage's operator to a subject that `push` feeds. Emissions outside `push` (a
 * timer-driven operator) and completion break the contract: the next push throws.
 */
export function startStage<In, P extends PortMap, S, V>(
  def: StageDefinition<In, P, S, V>,
  ctx: StageContext<S>,
  onOutput: (outputs: StageOutputs<P>) => void,
): StageRun<In, V> {
  const logic = createStageLogic(def, ctx);
  const input = new Subject<InputBatch<In>>();
  let pushing = false;
  let failure: { err: unknown } | undefined;
  let restored = logic.restore === undefined;
  const output$: Observable<StageOutputs<P>> = input.pipe(logic.operator);
  const sub = output$.subscribe({
    next(o) {
      if (pushing) onOutput(o);
      else
        failure ??= {
          err: new StageContractError(`stage ${def.name} emitted outside a batch`),
        };
    },
    error(err: unknown) {
      failure ??= { err };
    },
    complete() {
      failure ??= { err: new StageContractError(`stage ${def.name} completed`) };
    },
  });
  const throwIfFailed = () => {
    if (failure !== undefined) throw failure.err;
  };
  const restoreStep = () => {
    if (restored) return false;
    restored = logic.restore!.next().done === true;
    return !restored;
  };
  return {
    view: logic.view,
    restoreStep,
    restoreAll() {
      while (restoreStep());
    },
    push(batch) {
      throwIfFailed();
      if (!restored) throw new StageContractError(`stage ${def.name}: pushed before restored`);
      pushing = true;
      try {
        input.next(batch);
      } finally {
        pushing = false;
      }
      throwIfFailed();
    },
    stop() {
      sub.unsubscribe();
    },
  };
}
