import type { AlsSettings } from "./als-settings.js";

/** A trained model as training gives it: every user's and every item's factors. */
export interface AlsModel {
  settings: AlsSettings;
  users: readonly string[];
  items: string[];
  /** users.length × rank, row-major. */
  U: Float32Array;
  /** items.length × rank, row-major. */
  V: Float32Array;
  /** Offline metrics on a held-out slice of its training data (als-eval.ts), when computed. */
  offline?: OfflineMetrics;
}

/**
 * A model as it is served and stored: what answers need that cannot be derived, the settings,
 * the item ids and their factors V. No user factors: a user's vector is solved from their
 * current row against V when first asked for (the fold-in least squares, als-model.ts), as
 * streaming ALS systems serve (Oryx 2's speed layer, `implicit`'s `recalculate_user`). A model
 * of 1M users at rank 64 was 256 MB of user factors against ~13 MB of item factors at 50k items.
 */
export interface ServedModel {
  settings: AlsSettings;
  items: string[];
  /** items.length × rank, row-major. */
  V: Float32Array;
  /** Users of the matrix it was trained on (a count: their vectors are not kept). */
  users: number;
  /**
   * Implicit: YᵀY + λI of V (`gram`), what every fold-in starts from (k × k), when the training
   * gave it (its worker computes it for the offline metrics): else computed at the first fold-in,
   * the same bits. 37 ms of CPU at 5k items, 230 ms at 50k, 1.06 s at 200k (rank 64).
   */
  YtY?: Float64Array;
  offline?: OfflineMetrics;
}

/** The served form of a model: its user factors and ids dropped (a served one as it is). */
export function servedModel(m: AlsModel | ServedModel): ServedModel {
  if (typeof m.users === "number") return m as ServedModel;
  return {
    settings: m.settings,
    items: m.items,
    V: m.V,
    users: m.users.length,
    ...(m.offline ? { offline: m.offline } : {}),
  };
}

/**
 * Offline metrics of a trained ALS model (DESIGN §7), computed in the training
 * worker right after the training, on a held-out slice of the data it was trained on: for up to
 * `users` users (chosen by a PRNG seeded from the model's seed, so the same matrix gives the same
 * figures) one of their entries is held out (implicit: any; explicit: a rating of 4 or more), the
 * user's vector is solved again against the model's item factors from the rest of the row (the
 * fold-in least squares serving uses), and the held-out item is ranked among every item the user
 * has no other entry for. HitRate@k: held-out item in the top k; NDCG@k: 1/log2(rank + 1).
 *
 * Why fold-in and not a second training without the held-out cells: the served model must stay
 * the one trained on every event (a replay trains the same bits), and a second training would
 * double the worker's CPU. The cost of this choice: the item factors saw the held-out cells, so
 * the figures lean optimistic. An item touched by one or two users is shaped by them alone (on
 * the first 3000 ratings of MovieLens every held-out item was found: HR 1.0), so only entries of
 * items with at least `minItemUsers` (5) users are held out: there the held-out cell is one of
 * several that shaped the item. Read the figure as a comparison between versions of one engine,
 * not as an absolute hit rate (the prequential COLLABORATIVE rows are that: later events only).
 * Only indices are used: the worker gets the matrix without its ids.
 */
export interface OfflineMetrics {
  /** Users evaluated (one held-out entry each). */
  users: number;
  k: number;
  hitRate: number;
  ndcg: number;
  /** Wall-clock milliseconds the evaluation took (in the worker). */
  ms: number;
}
