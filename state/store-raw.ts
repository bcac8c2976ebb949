/**
 * Snapshots as logical entries ("<map>\0<key>" -> value), whatever the on-disk layout: the
 * archive's format (state/archive.ts), exported from a loaded state and imported into a new one.
 */

import { createStageState, persisted, SEP, type StageStateInternal } from "./stage-state.js";
import type { RawSnapshot } from "./store-types.js";

/** A loaded state as logical entries (SnapshotStore.exportRaw). */
export function rawOf(state: StageStateInternal): RawSnapshot {
  const entries: [string, unknown][] = [];
  for (const [name, data] of state.allMaps())
    for (const [k, v] of data) entries.push([name + SEP + k, persisted(v)]);
  return { meta: state.meta, entries };
}

/** A state holding the logical entries of `snap` (SnapshotStore.importRaw). */
export function stateOfRaw(snap: RawSnapshot): StageStateInternal {
  const state = createStageState();
  for (const [k, v] of snap.entries) state.loadEntry(k, v);
  state.meta = snap.meta;
  return state;
}
