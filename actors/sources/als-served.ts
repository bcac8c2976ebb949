import type { OfflineMetrics } from "./als-eval.js";
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
