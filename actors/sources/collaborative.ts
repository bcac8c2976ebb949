import { createRatingsBuilder, type RatingsStores, type RowsDelta } from "./als-matrix.js";
import type { Ratings } from "./als-matrix-rows.js";
import { createAlsIndex, type AlsIndex, type UserRows } from "./als-model.js";
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

/** What serving reads of the collaborative source: the models over the users' current rows. */
export interface CollaborativeServing {
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
  /** User vectors solved (folded in) since the models were set. */
  readonly folded: number;
}

/** The single-instance source (reco eval, tests): every user's rows and the models. */
export interface CollaborativeSource extends CollaborativeServing {
  /** Adds an event; `at` is the input point it makes (events fed, this one included). */
  add(e: SourceEvent, at: number): void;
  /** The matrix implicit ALS trains on. */
  implicitRatings(): Ratings;
  /** The matrix explicit ALS trains on. */
  explicitRatings(): Ratings;
}

/**
 * The interaction matrices (implicit: summed weights; explicit: the latest rating), as one user
 * partition keeps them for its users or one instance for everyone, with marks at training points
 * (als-matrix.ts). `at`: the stamp of the change (what fold-in compares: a user's vector is
 * solved again once their row's stamp moves).
 */
export function createCollaborativeRows(
  preset: SourcePreset,
  stores?: { implicit: RatingsStores; explicit: RatingsStores },
  /** The builders' options (als-matrix.ts: a user partition holds no matrix, tracks changes). */
  options: { hold?: boolean; changesSince?: number } = {},
) {
  const builders = {
    implicit: createRatingsBuilder(stores?.implicit, options),
    explicit: createRatingsBuilder(stores?.explicit, options),
  };
  return {
    add(e: SourceEvent, at: number) {
      const w = preset.weight(e);
      if (w > 0) builders.implicit.add(e.u, e.i, w, false, at);
      if (e.t === "rating" && e.r >= 0) builders.explicit.add(e.u, e.i, e.r, true, at);
    },
    /** A kind's matrix and rows. */
    of: (kind: ModelKind) => builders[kind],
    /** Both kinds' changes since the last take (with `changesSince`), forgotten. */
    takeChanges: (): Record<ModelKind, RowsDelta> => ({
      implicit: builders.implicit.takeChanges(),
      explicit: builders.explicit.takeChanges(),
    }),
    /** Applies a kind's delta from the original rows (a copy's rows: collaborative-copy.ts). */
    apply: (kind: ModelKind, delta: RowsDelta) => builders[kind].apply(delta),
    /** Marks the current point as mark `c` in both matrices. */
    mark(c: number) {
      builders.implicit.mark(c);
      builders.explicit.mark(c);
    },
    /** Forgets the marks below `c` in both. */
    dropBefore(c: number) {
      builders.implicit.dropBefore(c);
      builders.explicit.dropBefore(c);
    },
  };
}

export type CollaborativeRows = ReturnType<typeof createCollaborativeRows>;

/**
 * The served models over users' current rows (`rowsOf(kind)`: wherever they live, one instance
 * or the user's partition): candidates folded in per user (als-model.ts).
 */
export function createCollaborativeServing(
  s: CollaborativeSettings,
  rowsOf: (kind: ModelKind) => UserRows,
): CollaborativeServing {
  const served: Partial<Record<ModelKind, { model: ServedModel; at: number; index: AlsIndex }>> =
    {};
  const indexOf = (kind: ModelKind) => served[kind]?.index;
  return {
    setModel(kind, model, at) {
      if (!model) {
        delete served[kind];
        return;
      }
      const m = servedModel(model);
      served[kind] = { model: m, at, index: createAlsIndex(m, rowsOf(kind)) };
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
    get folded() {
      return (served.implicit?.index.solved ?? 0) + (served.explicit?.index.solved ?? 0);
    },
  };
}

/** One instance of every user's rows with its models (reco eval, tests, the single-instance form). */
export function createCollaborative(
  preset: SourcePreset,
  s: CollaborativeSettings,
  stores?: { implicit: RatingsStores; explicit: RatingsStores },
): CollaborativeSource {
  const rows = createCollaborativeRows(preset, stores);
  const serving = createCollaborativeServing(s, (kind) => rows.of(kind));
  return {
    ...serving,
    get folded() {
      return serving.folded;
    },
    add: (e, at) => rows.add(e, at),
    implicitRatings: () => rows.of("implicit").build(),
    explicitRatings: () => rows.of("explicit").build(),
  };
}
