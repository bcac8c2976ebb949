export { createStageState, openStateDb } from "./store.js";
export type { KeyedMap, SnapshotStore, StageState, StageStateInternal, StateDb } from "./store.js";
