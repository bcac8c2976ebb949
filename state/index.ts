export {
  createStageState,
  openStateDb,
  StateStoreCorruptError,
  StateStoreOpenError,
  StateStoreWriteError,
} from "./store.js";
export type {
  KeyedMap,
  RawSnapshot,
  SnapshotBatch,
  SnapshotStore,
  StageState,
  StageStateInternal,
  StateDb,
  StateDbOptions,
  StateDelta,
} from "./store.js";
