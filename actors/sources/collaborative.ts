import { createRatingsBuilder, type RatingsStores } from "./als-matrix.js";
import type { Ratings } from "./als-matrix-rows.js";
import { createAlsIndex, type AlsIndex } from "./als-model.js";
import { servedModel, type AlsModel, type ServedModel } from "./als-served.js";
import type { AlsSettings } from "./als-settings.js";
import type { SourcePreset } from "./preset.js";
import type { Scored, SourceEvent } from "./types.js";

/**
 * COLLABORATIVE (DESIGN §3.7): the interaction matrices ALS trains on (implicit: summed
 * interaction weights; explicit: the latest rating per user and movie) and the models trained
 * from them (set from outside: trained in a worker, restored from a snapshot).
 *
 * A served model keeps no user factors (als-served.ts ServedModel): every user's vector is solved from
 * their current row against the model's fixed item factors (the standard fold-in least squares,
 * one half-step of ALS for one user) when their candidates are first asked for, and solved again
 * after their row changes. The answer is a function of the model and the row alone, so a replay
 * gives the same; a user unknown to the model gets a vector the same way. Vectors and top lists
 * are kept in a bounded LRU per model (als-model.ts), not a map of every user asked.
 */
export interface CollaborativeSettings {
  implicit?: AlsSettings;
  explicit?: AlsSettings;
  /** Which model serves COLLABORATIVE (default implicit). */
  collaborative?: "implicit" | "explicit";
}

export type ModelKind = "implicit" | "explicit";

export interface CollaborativeSource {
  /** Adds an event; `at` is the input point it makes (events fed, this one included). */
  add(e: SourceEvent, at: number): void;
  /** The matrix implicit ALS trains on. */
  implicitRatings(): Ratings;
  /** The matrix explicit ALS trains on. */
  explicitRatings(): Ratings;
  /**
   * Serves `model`, trained on the matrix at input point `at` (undefined: none); a model with
   * user factors (as training gives it) is served without them.
   */
  setModel(kind: ModelKind, model: AlsModel | ServedModel | undefined, at: number): void;
  /** The served model of a kind and its point. */
  model(kind: ModelKind): { model: ServedModel; at: number } | undefined;
  /** The serving model's candidates (`keep` filters before the cut to `n`). */
  candidates(user: string, n: number, keep?: (item: string) => boolean): Scored[];
  /** The explicit model's candidates. */
  explicitCandidates(user: string, n: number, skip?: ReadonlySet<string>): Scored[];
  /**
   * Marks the current input point as a training point: until `unmark`, `ratingsAtMark` gives the
   * matrices of this point (copy on write), also after a restart from a later snapshot.
   */
  mark(): void;
  /** The kind's matrix at the marked point (undefined: none marked). */
  ratingsAtMark(kind: ModelKind): Ratings | undefined;
  unmark(kind: ModelKind): void;
  /** User vectors solved (folded in) since the models were set. */
  readonly folded: number;
}

export function createCollaborative(
  preset: SourcePreset,
  s: CollaborativeSettings,
  stores?: { implicit: RatingsStores; explicit: RatingsStores },
): CollaborativeSource {
  const builders = {
    implicit: createRatingsBuilder(stores?.implicit),
    explicit: createRatingsBuilder(stores?.explicit),
  };
  const served: Partial<Record<ModelKind, { model: ServedModel; at: number; index: AlsIndex }>> =
    {};
  const indexOf = (kind: ModelKind) => served[kind]?.index;

  return {
    add(e, at) {
      const w = preset.weight(e);
      if (w > 0) builders.implicit.add(e.u, e.i, w, false, at);
      if (e.t === "rating" && e.r >= 0) builders.explicit.add(e.u, e.i, e.r, true, at);
    },
    implicitRatings: () => builders.implicit.build(),
    explicitRatings: () => builders.explicit.build(),
    setModel(kind, model, at) {
      if (!model) {
        delete served[kind];
        return;
      }
      const m = servedModel(model);
      const rows = builders[kind];
      served[kind] = { model: m, at, index: createAlsIndex(m, rows) };
    },
    model(kind) {
      const m = served[kind];
      return m && { model: m.model, at: m.at };
    },
    candidates(user, n, keep) {
      return indexOf(s.collaborative ?? "implicit")?.candidates(user, n, keep) ?? [];
    },
    explicitCandidates(user, n, skip) {
      return indexOf("explicit")?.candidates(user, n, skip && ((i) => !skip.has(i))) ?? [];
    },
    mark() {
      builders.implicit.mark();
      builders.explicit.mark();
    },
    ratingsAtMark: (kind) => builders[kind].buildMarked(),
    unmark: (kind) => builders[kind].unmark(),
    get folded() {
      return (served.implicit?.index.solved ?? 0) + (served.explicit?.index.solved ?? 0);
    },
  };
}
