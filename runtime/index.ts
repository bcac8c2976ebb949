// Generic actor runtime on RxJS: knows nothing about recommendations. Symbols below are the ones
// stages, connectors and bin/ are meant to use.
export { createActor, ActorStoppedError, ActorFailedError } from "./actor.js";
export {
  createSupervisor,
  EscalationError,
  DuplicateChildError,
  SupervisorStoppedError,
} from "./supervisor.js";
export { backoffDelay } from "./backoff.js";
export {
  createStageLogic,
  defineStage,
  port,
  startStage,
  StageContractError,
  withProcessingTime,
} from "./stage.js";

export type {
  Actor,
  ActorContext,
  ActorEvent,
  ActorOptions,
  ActorStatus,
  Behavior,
} from "./actor.js";
export type {
  Clock,
  RestartOptions,
  Supervisor,
  SupervisorEvent,
  SupervisorOptions,
} from "./supervisor.js";
export type { BackoffOptions } from "./backoff.js";
export type {
  InputBatch,
  Port,
  PortMap,
  RecordOf,
  StageContext,
  StageDefinition,
  StageLogic,
  StageOperator,
  StageOutputs,
  StageRun,
  StateMap,
  StateMaps,
  ValueCodec,
  StateValue,
} from "./stage.js";
