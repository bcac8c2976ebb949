import { asyncScheduler, type SchedulerLike } from "rxjs";
import {
  startStage,
  type PortMap,
  type RecordOf,
  type StageDefinition,
  type StageOutputs,
  type StageRun,
} from "../../runtime/index.js";
import { decodeEnvelope, type StageHandler, type StageOutput } from "./host.js";
import type { StageState } from "../../state/index.js";

/**
 * Runs a `defineStage` stage inside today's stage host, as a `StageHandler`: the hop is decoded
 * once, its records go to the stage as one typed batch (with the input position and the
 * event-time progress, kept here for every stage), and what the stage emits on its ports goes to
 * the sinks the topology gives, synchronously within `handle`, so the host's exactness (outputs
 * of an input complete when its handler returns) is unchanged.
 */

/**
 * Where a port's records go: a hop subject (the host batches them; the subject is touched on every
 * input so progress flows downstream even without records), a function given the host's output
 * for each record (raw messages such as late events, KV upserts), or `{ batch }` given all of a
 * batch's records at once (a count per batch).
 *
 * A stage that passes its input batch on unchanged (the same array on a hop port) has the input
 * hop's bytes forwarded with a new head instead of its records encoded again.
 */
export type PortSink<T> =
  | string
  | ((record: T, out: StageOutput) => void)
  | { batch: (records: readonly T[], out: StageOutput) => void };

/** A sink for every port of a stage. */
export type PortTopology<P extends PortMap> = { readonly [K in keyof P]: PortSink<RecordOf<P[K]>> };

export interface AdapterOptions<S, P extends PortMap> {
  settings: S;
  topology: PortTopology<P>;
  /** The stage's timers; RxJS's async scheduler by default. */
  scheduler?: SchedulerLike;
  /**
   * "raw": the input is published messages, each handed over as a batch of one (`InputMessage`
   * records, positions by stream sequence, no progress: the source stage decides it); default:
   * hops.
   */
  input?: "raw";
}

/** A handler and the stage's view (its queries) in one object, as the host and its owner use it. */
export type AdaptedHandler<V> = StageHandler & (V extends object ? V : unknown);

/** The metadata key of the progress (the name the stages used before, so snapshots still load). */
const PROGRESS = "progress";

/** Starts the stage on `state` and rebuilds its in-memory indexes in one go. */
export function createStageHandler<In, P extends PortMap, S, V>(
  def: StageDefinition<In, P, S, V>,
  state: StageState,
  out: StageOutput,
  opts: AdapterOptions<S, P>,
): AdaptedHandler<V> {
  const { run, handler } = adapt(def, state, out, opts);
  run.restoreAll();
  return handler;
}

/**
 * The same, rebuilding in slices with the event loop given back between them (a large state's
 * indexes took up to 1.5 s in one go while a restarted process was already answering gRPC).
 */
export async function loadStageHandler<In, P extends PortMap, S, V>(
  def: StageDefinition<In, P, S, V>,
  state: StageState,
  out: StageOutput,
  opts: AdapterOptions<S, P>,
): Promise<AdaptedHandler<V>> {
  const { run, handler } = adapt(def, state, out, opts);
  while (run.restoreStep()) await new Promise<void>((resolve) => setImmediate(resolve));
  return handler;
}

function adapt<In, P extends PortMap, S, V>(
  def: StageDefinition<In, P, S, V>,
  state: StageState,
  out: StageOutput,
  opts: AdapterOptions<S, P>,
): { run: StageRun<In, V>; handler: AdaptedHandler<V> } {
  const sinks: [string, PortSink<unknown>][] = [];
  for (const name of Object.keys(def.ports)) {
    const sink = (opts.topology as Record<string, PortSink<unknown> | undefined>)[name];
    if (sink === undefined) throw new Error(`stage ${def.name}: port ${name} goes nowhere`);
    sinks.push([name, sink]);
  }
  const hops = sinks.flatMap(([, s]) => (typeof s === "string" ? [s] : []));
  // The input hop being handled: its records and bytes, for forwarding it unchanged.
  let input: { recs: readonly unknown[]; data: Uint8Array } | undefined;
  const dispatch = (o: StageOutputs<P>) => {
    for (const [name, sink] of sinks) {
      const recs = (o as Record<string, readonly unknown[] | undefined>)[name];
      if (recs === undefined) continue;
      if (typeof sink === "string") {
        if (recs === input?.recs && recs.length > 0 && out.forward)
          out.forward(sink, input.data, recs);
        else for (const r of recs) out.emit(sink, r);
      } else if (typeof sink === "function") for (const r of recs) sink(r, out);
      else if (recs.length > 0) sink.batch(recs, out);
    }
  };
  const run = startStage(
    def,
    {
      name: def.name,
      state,
      settings: opts.settings,
      scheduler: opts.scheduler ?? asyncScheduler,
      count: (name, n) => out.count(name, n),
    },
    dispatch,
  );
  const raw = opts.input === "raw";
  let progress = raw ? -1 : Number(state.meta[PROGRESS] ?? -1);
  // The last input position handed over (hop `upTo`, or a raw input's stream sequence).
  let position = Number((raw ? state.meta.seq : state.meta.upTo) ?? 0);
  const handle: StageHandler["handle"] = (msg, lastUpTo) => {
    if (raw) {
      // A source's raw input: one message, no progress (the stage decides it, on a port).
      const from = position;
      position = msg.seq;
      run.push({
        records: [msg as In],
        position: { from, upTo: msg.seq },
        progress: { from: -1, to: -1 },
      });
      return;
    }
    const env = decodeEnvelope<In>(msg.data);
    const from = progress;
    if (env.wm > progress) {
      progress = env.wm;
      state.meta[PROGRESS] = progress;
    }
    input = { recs: env.recs, data: msg.data };
    try {
      run.push({
        records: env.recs,
        position: { from: lastUpTo, upTo: env.upTo },
        progress: { from, to: progress },
      });
    } finally {
      input = undefined;
    }
    position = env.upTo;
    out.setProgress(progress);
    for (const subject of hops) out.touch(subject);
  };
  /** The processing-time trigger: a batch without records, where the last one left off. */
  const tick = () =>
    run.push({
      records: [],
      position: { from: position, upTo: position },
      progress: { from: progress, to: progress },
      trigger: "time",
    });
  // The view's own properties as they are (getters stay getters: they read live state).
  const handler = Object.defineProperties(
    def.trigger === "processing-time" ? { handle, tick } : { handle },
    run.view === undefined ? {} : Object.getOwnPropertyDescriptors(run.view),
  ) as AdaptedHandler<V>;
  return { run, handler };
}

/** A StageOutput for stages whose ports all go to functions that ignore it. */
export const NO_OUTPUT: StageOutput = {
  emit: () => undefined,
  touch: () => undefined,
  setProgress: () => undefined,
  raw: () => undefined,
  kvPut: () => undefined,
  count: () => undefined,
};
