import { asyncScheduler } from "rxjs";
import {
  startStage,
  type PortMap,
  type StageDefinition,
  type StageRun,
} from "../../runtime/index.js";
import {
  decodeEnvelope,
  HOPS_IN_FLIGHT,
  type StageHandler,
  type StageSpec,
} from "../host/index.js";
import type { StageState } from "../../state/index.js";
import type { ParsedRecord } from "../contract/index.js";
import { subjects } from "../contract/index.js";
import { loadWaiting } from "./merged-waiting.js";

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
  /** The subject has sent every record up to this EVENTS sequence. */
  upTo: number;
  /** Last record sequence taken. */
  s: number;
  /** Progress stamped on its newest hop. */
  wm: number;
}

/**
 * The spec of a single-instance stage (`<stage>/0`) fed every user-path partition's hops in
 * EVENTS order: one wildcard consumer over `reco.parse.*`, one flush per input message, the
 * handler built by loadMergedHandler.
 */
export function mergedStageSpec<P extends PortMap, S, V>(
  def: StageDefinition<ParsedRecord, P, S, V>,
  stream: string,
  partitions: number,
  settings: (state: StageState) => S,
): StageSpec<StageHandler & V> {
  return {
    stage: def.name,
    partition: 0,
    stream,
    subject: subjects.parseAll,
    input: "raw",
    // Raw, but hop messages (up to B records each), not events: a hop input's few in flight.
    inFlight: HOPS_IN_FLIGHT,
    batching: "per-input",
    create: (state) => loadMergedHandler(def, state, settings(state), partitions),
  };
}

export async function loadMergedHandler<P extends PortMap, S, V>(
  def: StageDefinition<ParsedRecord, P, S, V>,
  state: StageState,
  settings: S,
  partitions: number,
): Promise<StageHandler & V> {
  const positions = state.map<SubjectPos>("positions");
  const waiting = loadWaiting(state);
  const names = Array.from({ length: partitions }, (_, p) => subjects.parse(p));
  const run: StageRun<ParsedRecord, V> = startStage(
    def,
    {
      name: def.name,
      state,
      settings,
      scheduler: asyncScheduler, // these stages have no timers
      count: () => undefined,
    },
    () => undefined,
  );
  while (run.restoreStep()) await new Promise<void>((resolve) => setImmediate(resolve));

  const handle: StageHandler["handle"] = (msg) => {
    const env = decodeEnvelope<ParsedRecord>(msg.data);
    const pos = positions.get(msg.subject) ?? { upTo: 0, s: 0, wm: -1 };
    const recs = env.recs.filter((r) => r.s > pos.s);
    if (recs.length > 0) waiting.append(msg.subject, recs);
    positions.set(msg.subject, {
      upTo: Math.max(pos.upTo, env.upTo),
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
    const ready: ParsedRecord[] = [];
    for (const name of names) waiting.take(name, complete, ready);
    ready.sort((a, b) => a.s - b.s);
    const to = waiting.empty(names) ? wm : -1;
    run.push({
      records: ready,
      position: { from: msg.seq - 1, upTo: msg.seq },
      progress: { from: to, to },
    });
  };
  return Object.assign({ handle }, run.view) as StageHandler & V;
}
