import { asyncScheduler } from "rxjs";
import { startStage, type StageRun } from "../runtime/index.js";
import { decodeEnvelope, type StageHandler } from "./host.js";
import type { StageState } from "../state/index.js";
import { subjects } from "./subjects.js";
import {
  recommenderStage,
  type RecommenderInput,
  type RecommenderSettings,
  type RecommenderView,
} from "./recommender-stage.js";

/**
 * Runs the recommender stage in the stage host on a RAW input: one consumer over every
 * partition's user-path hops (a wildcard subject), merged back into EVENTS order.
 *
 * Why merged: the hops' interleaving across partitions follows parse's batching, which follows
 * timing, so two runs over the same events (one of them SIGKILLed) see different interleavings;
 * the sources sum floats and index ALS rows in the order they are fed, so that order must be a
 * function of the events alone. Every record carries its EVENTS sequence `s`, and a hop's `upTo`
 * says its subject has nothing more up to there; records are fed in `s` order once every
 * partition's subject has reported that far (parse's progress broadcast touches every subject,
 * so an idle partition reports too). Records waiting for that are kept in the state, with each
 * subject's `upTo` and last `s` (which also drops a hop re-published after parse's restart).
 *
 * The host's hop dedupe (`upTo`, one number per input) does not fit a consumer of several
 * subjects, hence the raw input. Rebuilding the sources from the log gives the loop back.
 */
export type RecommenderHandler = StageHandler & RecommenderView;

interface SubjectPos {
  /** The subject has sent every record up to this EVENTS sequence. */
  upTo: number;
  /** Last record sequence taken. */
  s: number;
  /** Progress stamped on its newest hop. */
  wm: number;
}

export async function loadRecommenderHandler(
  state: StageState,
  settings: RecommenderSettings,
): Promise<RecommenderHandler> {
  const positions = state.map<SubjectPos>("positions");
  const waiting = state.map<RecommenderInput[]>("waiting");
  const names = Array.from({ length: settings.partitions }, (_, p) => subjects.parse(p));
  const run: StageRun<RecommenderInput, RecommenderView> = startStage(
    recommenderStage,
    {
      name: recommenderStage.name,
      state,
      settings,
      scheduler: asyncScheduler, // the stage has no timers
      count: () => undefined,
    },
    () => undefined,
  );
  while (run.restoreStep()) await new Promise<void>((resolve) => setImmediate(resolve));

  const handle: StageHandler["handle"] = (msg) => {
    const env = decodeEnvelope<RecommenderInput>(msg.data);
    const pos = positions.get(msg.subject) ?? { upTo: 0, s: 0, wm: -1 };
    const recs = env.recs.filter((r) => r.s > pos.s);
    if (recs.length > 0) waiting.set(msg.subject, [...(waiting.get(msg.subject) ?? []), ...recs]);
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
    const ready: RecommenderInput[] = [];
    let left = 0;
    for (const name of names) {
      const w = waiting.get(name);
      if (!w) continue;
      let x = 0;
      while (x < w.length && w[x]!.s <= complete) ready.push(w[x++]!);
      if (x === w.length) waiting.delete(name);
      else if (x > 0) waiting.set(name, w.slice(x));
      left += w.length - x;
    }
    ready.sort((a, b) => a.s - b.s);
    // Progress without records (idle markers) counts only once nothing waits: it is then past
    // every record fed, whatever the batching.
    const to = left === 0 ? wm : -1;
    run.push({
      records: ready,
      position: { from: msg.seq - 1, upTo: msg.seq },
      progress: { from: to, to },
    });
  };
  return Object.assign({ handle }, run.view);
}
