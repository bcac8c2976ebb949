import { asyncScheduler } from "rxjs";
import { startStage, type StageRun } from "../runtime/index.js";
import { decodeEnvelope, type StageHandler } from "./host.js";
import type { StageState } from "../state/index.js";
import {
  recommenderStage,
  type RecommenderInput,
  type RecommenderSettings,
  type RecommenderView,
} from "./recommender-stage.js";

/**
 * Runs the recommender stage in the stage host on a RAW input: one consumer over every
 * partition's user-path hops (a wildcard subject). The host's hop dedupe (`upTo`, one number per
 * input) does not fit a consumer of several producers' subjects, whose batches share `upTo`s, so
 * this handler dedupes per subject by the records' own EVENTS sequence (`s`, increasing within a
 * subject): a hop re-published after parse's restart, beyond the duplicate window, is dropped
 * record by record. Rebuilding the sources from the log gives the event loop back between slices.
 */
export type RecommenderHandler = StageHandler & RecommenderView;

export async function loadRecommenderHandler(
  state: StageState,
  settings: RecommenderSettings,
): Promise<RecommenderHandler> {
  const positions = state.map<number>("positions");
  let progress = Number(state.meta.progress ?? -1);
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
    const last = positions.get(msg.subject) ?? 0;
    let recs = env.recs;
    if (recs.length > 0 && recs[0]!.s <= last) recs = recs.filter((r) => r.s > last);
    if (recs.length > 0) positions.set(msg.subject, recs[recs.length - 1]!.s);
    const from = progress;
    if (env.wm > progress) {
      progress = env.wm;
      state.meta.progress = progress;
    }
    run.push({
      records: recs,
      position: { from: msg.seq - 1, upTo: msg.seq },
      progress: { from, to: progress },
    });
  };
  return Object.assign({ handle }, run.view);
}
