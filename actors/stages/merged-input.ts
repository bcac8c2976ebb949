import { asyncScheduler } from "rxjs";
import {
  startStage,
  type PortMap,
  type RecordOf,
  type StageDefinition,
  type StageRun,
} from "../../runtime/index.js";
import {
  decodeEnvelope,
  type Envelope,
  type InputMessage,
  HOPS_IN_FLIGHT,
  type StageHandler,
  type StageOutput,
  type StageSpec,
} from "../host/index.js";
import type { StageState } from "../../state/index.js";
import { subjects } from "../contract/index.js";
import { loadWaiting, MAP, OLD_MAP } from "./merged-waiting.js";

/**
 * Runs a stage fed every partition's user-path records in EVENTS order, in the stage host on a
 * RAW input: one consumer over every partition's user-path hops (a wildcard subject), merged
 * back into EVENTS order. The candidate sources whose data sums over many users' events
 * (co-visitation, trending, the ALS matrix and its training points) are stages of this kind.
 *
 * Why merged: the hops' interleaving across partitions follows parse's batching, which follows
 * timing, so two runs over the same events (one of them SIGKILLed) see different interleavings;
 * the sources sum floats and index ALS rows in the order they are fed, so that order must be a
 * function of the events alone. Every record carries its EVENTS sequence `s`, and a hop's `upTo`
 * says its subject has nothing more up to there; records are fed in `s` order once every
 * partition's subject has reported that far (parse's progress broadcast touches every subject,
 * so an idle partition reports too). Records waiting for that are kept in the state, one key per
 * hop (merged-waiting.ts), with each subject's `upTo` and last `s` (which also drops a hop
 * re-published after parse's restart).
 *
 * The host's hop dedupe (`upTo`, one number per input) does not fit a consumer of several
 * subjects, hence the raw input. The batch's progress is the highest progress of any subject
 * once no record waits (then it is past every record fed, whatever the batching), else -1.
 */
interface SubjectPos {
  /**
   * The producer's input position its subject's last hop taken covered (the hop's `upTo`): the
   * next hop follows on when its `prev` is at most this. Absent in state written before it.
   */
  hop?: number;
  /** The subject has sent every record up to this EVENTS sequence. */
  upTo: number;
  /** Last record sequence taken. */
  s: number;
  /** Progress stamped on its newest hop. */
  wm: number;
}

/** The subjects a merged stage reads and what in a hop says how far its subject is complete. */
export interface MergedInput {
  /** The consumer's subject (a wildcard). */
  subject: string;
  /** The subjects it stands for, in partition order. */
  names: readonly string[];
  /**
   * Where a hop names the EVENTS sequence its subject is complete to: its `upTo` (parse's hops),
   * or its last record (`mark`: the pairs of a history stage end each hop with a mark, whose
   * `s` is that; the hop's `upTo` is the history stage's own input position). `none`: the
   * subjects' records are not merged in one order but fed as they come, each subject's in its
   * own order (`s` counts them per subject): a stage whose result does not depend on how the
   * subjects interleave (the collaborative trainer's copies, one per partition).
   */
  complete: "upTo" | "mark" | "none";
  /**
   * Records taken again at the subject's last sequence (a subject's records are otherwise taken
   * once, past it): marks, whose progress may move on while the position does not.
   */
  again?: (r: { s: number }) => boolean;
  /**
   * The record standing for an idle marker parse applied (envelope.ts `ix`: its EVENTS sequence
   * and the progress it moved to), fed in sequence order with the events; absent: not read.
   */
  idle?: (s: number, progress: number) => { s: number };
}

/** Every user partition's parse hops (covisit's input before, collaborative's now). */
export const parseInput = (partitions: number): MergedInput => ({
  subject: subjects.parseAll,
  names: Array.from({ length: partitions }, (_, p) => subjects.parse(p)),
  complete: "upTo",
});

/**
 * One user partition's parse hops, with the idle markers parse applied as records `{ s, idle }`
 * (`idle`: the progress it moved to) among the events: the collaborative source's input.
 */
export const partitionInput = (p: number): MergedInput => ({
  subject: subjects.parse(p),
  names: [subjects.parse(p)],
  complete: "upTo",
  idle: (s, progress) => ({ s, idle: progress }),
});

/** The pairs every user partition's history stage sends item partition q (covisit/<q>). */
export const pairsInput = (q: number, partitions: number): MergedInput => ({
  subject: subjects.pairsTo(q),
  names: Array.from({ length: partitions }, (_, p) => subjects.pairs(q, p)),
  complete: "mark",
  again: (r) => (r as { p?: number }).p !== undefined,
});

/** What every user partition's collaborative stage sends the trainer, fed as it comes. */
export const collabInput = (partitions: number): MergedInput => ({
  subject: subjects.collabAll,
  names: Array.from({ length: partitions }, (_, p) => subjects.collab(p)),
  complete: "none",
});

/**
 * The spec of a stage instance fed several subjects' hops in EVENTS order: one wildcard
 * consumer, one flush per input message, the handler built by loadMergedHandler. Its ports go
 * to `topology`'s functions (none: a stage without ports).
 */
export function mergedStageSpec<R extends { s: number }, P extends PortMap, S, V>(
  def: StageDefinition<R, P, S, V>,
  stream: string,
  input: MergedInput,
  settings: (state: StageState) => S,
  partition = 0,
  topology?: MergedTopology<P>,
  /** Its hops may go in parts (StageSpec.splitHops): their reader is a merged input too. */
  splitHops = false,
): StageSpec<StageHandler & V> {
  return {
    stage: def.name,
    partition,
    stream,
    subject: input.subject,
    input: "raw",
    // Raw, but hop messages (up to B records each), not events: a hop input's few in flight.
    inFlight: HOPS_IN_FLIGHT,
    batching: "per-input",
    ...(splitHops ? { splitHops } : {}),
    create: (state, out) =>
      loadMergedHandler(def, state, settings(state), input, topology && { out, topology }),
  };
}

/** Where a merged stage's ports go: a function per port, given the host's output. */
export type MergedTopology<P extends PortMap> = {
  readonly [K in keyof P]: (record: RecordOf<P[K]>, out: StageOutput) => void;
};

export async function loadMergedHandler<R extends { s: number }, P extends PortMap, S, V>(
  def: StageDefinition<R, P, S, V>,
  state: StageState,
  settings: S,
  input: MergedInput,
  outputs?: { out: StageOutput; topology: MergedTopology<P> },
): Promise<StageHandler & V> {
  const positions = state.map<SubjectPos>("positions");
  const { names } = input;
  // Positions of other subjects: the state of another input's layout (covisit read every
  // partition's parse hops once), which this one does not continue. The stage sees that too.
  if ([...positions.keys()].some((k) => !names.includes(k)))
    for (const name of ["positions", MAP, OLD_MAP]) {
      const m = state.map(name);
      for (const k of [...m.keys()]) m.delete(k);
    }
  const waiting = loadWaiting<R>(state);
  const run: StageRun<R, V> = startStage(
    def,
    {
      name: def.name,
      state,
      settings,
      scheduler: asyncScheduler, // these stages have no timers
      count: () => undefined,
    },
    (o) => {
      if (!outputs) return;
      for (const [name, sink] of Object.entries(outputs.topology) as [
        string,
        (r: unknown, out: StageOutput) => void,
      ][]) {
        const recs = (o as Record<string, readonly unknown[] | undefined>)[name];
        if (recs) for (const r of recs) sink(r, outputs.out);
      }
    },
  );
  while (run.restoreStep()) await new Promise<void>((resolve) => setImmediate(resolve));

  /**
   * Hops that do not follow on from their subject's last one taken (its `prev` is beyond it): a
   * hop stored after its subject's next one (a publish retried after a timeout; one lost and sent
   * again by its producer restarted from a snapshot). Taking the newer hop first would drop the
   * older one's records as taken (their `s` is below the subject's newest), so it waits here,
   * as a single input's hops wait in the host (hop-order.ts), until a hop that follows on comes.
   * In memory: the snapshot stays before the first of them (heldFrom), so a restart reads them
   * again.
   */
  const held = new Map<string, { msg: InputMessage; env: Envelope<R>; since: number }[]>();
  let heldCount = 0;

  const handle: StageHandler["handle"] = (msg) => {
    const env = decodeEnvelope<R>(msg.data);
    const prev = env.prev ?? 0;
    const hop = positions.get(msg.subject)?.hop;
    if (hop !== undefined && prev > hop) {
      const list = held.get(msg.subject);
      const h = { msg, env, since: Date.now() };
      if (list) list.push(h);
      else held.set(msg.subject, [h]);
      heldCount++;
      return;
    }
    take(msg, env);
    // The hops of the subject that waited for this one and now follow on, in their order.
    for (let list = held.get(msg.subject); list !== undefined; list = held.get(msg.subject)) {
      const at = positions.get(msg.subject)?.hop ?? 0;
      const x = list.findIndex((h) => (h.env.prev ?? 0) <= at);
      if (x < 0) break;
      const [next] = list.splice(x, 1);
      heldCount--;
      if (list.length === 0) held.delete(msg.subject);
      take(next!.msg, next!.env);
    }
  };

  /** Takes one hop of a subject: its new records wait, or are fed once every subject is there. */
  const take = (msg: InputMessage, env: Envelope<R>) => {
    const pos = positions.get(msg.subject) ?? { upTo: 0, s: 0, wm: -1 };
    const again = input.again;
    let recs = env.recs.filter((r) => r.s > pos.s || (r.s === pos.s && again?.(r) === true));
    const ix = input.idle !== undefined ? env.ix : undefined;
    if (ix !== undefined) {
      const marks: R[] = [];
      for (let k = 0; k + 1 < ix.length; k += 2)
        if (ix[k]! > pos.s) marks.push(input.idle!(ix[k]!, ix[k + 1]!) as R);
      if (marks.length > 0) recs = [...recs, ...marks].sort((a, b) => a.s - b.s);
    }
    // One subject is complete at its own hop: its records need not wait; nor records fed as
    // they come.
    const alone = (names.length === 1 && input.complete === "upTo") || input.complete === "none";
    if (recs.length > 0 && !alone) waiting.append(msg.subject, recs);
    const upTo =
      input.complete === "mark" ? (env.recs[env.recs.length - 1]?.s ?? pos.upTo) : env.upTo;
    positions.set(msg.subject, {
      hop: Math.max(pos.hop ?? 0, env.upTo),
      upTo: Math.max(pos.upTo, upTo),
      s: recs.length > 0 ? recs[recs.length - 1]!.s : pos.s,
      wm: Math.max(pos.wm, env.wm),
    });
    // Everything up to the lowest subject's upTo is complete: fed in EVENTS order.
    let complete = Infinity;
    let wm = -1;
    for (const name of names) {
      const p = positions.get(name);
      complete = Math.min(complete, p?.upTo ?? 0);
      wm = Math.max(wm, p?.wm ?? -1);
    }
    let ready: R[] = [];
    if (alone) ready = recs;
    else {
      for (const name of names) waiting.take(name, complete, ready);
      ready.sort((a, b) => a.s - b.s);
    }
    const to = input.complete === "upTo" && (alone || waiting.empty(names)) ? wm : -1;
    run.push({
      records: ready,
      position: { from: msg.seq - 1, upTo: msg.seq },
      progress: { from: to, to },
    });
  };
  const heldFrom = () => {
    if (heldCount === 0) return undefined;
    let min = Infinity;
    for (const list of held.values()) for (const h of list) min = Math.min(min, h.msg.seq);
    return min;
  };
  const heldLongest = () => {
    if (heldCount === 0) return undefined;
    let longest: { subject: string; prev: number; applied: number; since: number } | undefined;
    for (const [subject, list] of held)
      for (const h of list)
        if (longest === undefined || h.since < longest.since)
          longest = {
            subject,
            prev: h.env.prev ?? 0,
            applied: positions.get(subject)?.hop ?? 0,
            since: h.since,
          };
    return longest;
  };
  return Object.assign({ handle, heldFrom, heldLongest }, run.view) as StageHandler & V;
}
