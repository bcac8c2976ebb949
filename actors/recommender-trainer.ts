import type { Ratings } from "./sources/als-matrix.js";
import type { AlsModel, AlsSettings } from "./sources/als.js";

/**
 * ALS trainings of the recommender stage, off the event loop. The stage decides WHEN to train
 * (at deterministic points of its input: see collaborative-stage.ts) and hands over the ratings
 * of that point; this runs one training per model kind at a time and keeps only the newest
 * waiting one (a training that a newer point supersedes would be served for a moment at best).
 * The newest point is always trained, so once everything is trained the model is the same
 * whatever the timing: a function of the input alone.
 */
export type ModelKind = "implicit" | "explicit";

export type TrainFn = (
  ratings: Ratings,
  settings: AlsSettings,
  signal: AbortSignal,
) => Promise<AlsModel>;

export interface Trainer {
  /** Trains `ratings` (the matrix at input point `at`: events added so far). */
  submit(kind: ModelKind, at: number, ratings: Ratings, settings: AlsSettings): void;
  /** True while a training runs or waits. */
  busy(): boolean;
  /** Aborts what runs and drops what waits (the stage stopped or restarts). */
  stop(): void;
}

interface Job {
  at: number;
  ratings: Ratings;
  settings: AlsSettings;
}

export function createTrainer(o: {
  train: TrainFn;
  /** A model trained at point `at`. Not called after `stop()`. */
  onModel(kind: ModelKind, at: number, model: AlsModel): void;
  onError?(kind: ModelKind, err: unknown): void;
}): Trainer {
  const abort = new AbortController();
  const slots = new Map<ModelKind, { running?: Job; waiting?: Job }>();
  const run = (kind: ModelKind) => {
    const slot = slots.get(kind);
    if (!slot || slot.running || !slot.waiting || abort.signal.aborted) return;
    const job = (slot.running = slot.waiting);
    slot.waiting = undefined;
    o.train(job.ratings, job.settings, abort.signal).then(
      (model) => {
        slot.running = undefined;
        if (abort.signal.aborted) return;
        o.onModel(kind, job.at, model);
        run(kind);
      },
      (err: unknown) => {
        slot.running = undefined;
        if (abort.signal.aborted) return;
        o.onError?.(kind, err);
        run(kind);
      },
    );
  };
  return {
    submit(kind, at, ratings, settings) {
      let slot = slots.get(kind);
      if (!slot) slots.set(kind, (slot = {}));
      slot.waiting = { at, ratings, settings };
      run(kind);
    },
    busy: () => [...slots.values()].some((s) => s.running || s.waiting),
    stop: () => abort.abort(),
  };
}
