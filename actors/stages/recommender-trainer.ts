import type { Ratings, AlsModel, ServedModel, AlsSettings } from "../sources/index.js";

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
) => Promise<AlsModel | ServedModel>;

export interface Trainer {
  /**
   * Trains the matrix at input point `at` (events added so far). `ratings` builds it, called
   * when the training starts: a point superseded while it waits is never built (building the
   * whole matrix from the stored rows at every training point was 62-71% of the main thread over
   * a MovieLens replay, most of it for points whose training never ran; it is now a copy of the
   * matrix kept as rows change, ~1 ms of CPU there: als-matrix-rows.ts). It must build the
   * matrix of point `at` then (the collaborative stage's marked matrix: copy on write since the
   * point); undefined: that matrix is lost, nothing is trained.
   *
   * `delayMs`: the training starts no sooner (unless a newer point is submitted meanwhile,
   * which then starts at once): a restart's training of the point its snapshot left untrained
   * builds the whole matrix, which is not what a restarted process should do first.
   */
  submit(
    kind: ModelKind,
    at: number,
    ratings: () => Ratings | undefined,
    settings: AlsSettings,
    delayMs?: number,
  ): void;
  /** True while a training runs or waits. */
  busy(): boolean;
  /** Aborts what runs and drops what waits (the stage stopped or restarts). */
  stop(): void;
}

interface Job {
  at: number;
  ratings: () => Ratings | undefined;
  settings: AlsSettings;
}

export function createTrainer(o: {
  train: TrainFn;
  /** A model trained at point `at`. Not called after `stop()`. */
  onModel(kind: ModelKind, at: number, model: AlsModel | ServedModel): void;
  onError?(kind: ModelKind, err: unknown): void;
}): Trainer {
  const abort = new AbortController();
  const slots = new Map<ModelKind, { running?: Job; waiting?: Job }>();
  const timers = new Set<NodeJS.Timeout>();
  const run = (kind: ModelKind) => {
    const slot = slots.get(kind);
    if (!slot || slot.running || !slot.waiting || abort.signal.aborted) return;
    const job = (slot.running = slot.waiting);
    slot.waiting = undefined;
    let ratings: Ratings | undefined;
    try {
      ratings = job.ratings();
    } catch (err) {
      ratings = undefined;
      o.onError?.(kind, err);
    }
    if (!ratings) {
      slot.running = undefined;
      return run(kind);
    }
    o.train(ratings, job.settings, abort.signal).then(
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
    submit(kind, at, ratings, settings, delayMs = 0) {
      let slot = slots.get(kind);
      if (!slot) slots.set(kind, (slot = {}));
      slot.waiting = { at, ratings, settings };
      if (delayMs <= 0) return run(kind);
      const t = setTimeout(() => {
        timers.delete(t);
        run(kind);
      }, delayMs);
      timers.add(t);
    },
    busy: () => [...slots.values()].some((s) => s.running || s.waiting),
    stop: () => {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      abort.abort();
    },
  };
}
