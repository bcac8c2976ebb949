/**
 * The generic stage host and the chain: a stage on an injected transport (input, batching, codec,
 * outputs, poison, snapshots, timers), the chain of co-partitioned stages, the hop envelope.
 *
 * What the rest of the program uses from actors/host/; its files import each other directly.
 */
export { createAlignGroups } from "./align.js";
export { startBatchTimer } from "./batching.js";
export { envelopeCodec } from "./codec.js";
export { deadLetterHeaders, fitRawOutput, isPermanentPublishError } from "./dead-letter.js";
export {
  encodeEnvelope,
  peekHead,
  peekUpTo,
  readShared,
  sharedHeld,
  setDefaultHopForm,
  withHead,
} from "./envelope.js";
export { createHopOrder } from "./hop-order.js";
export { chainSpec, isChainHandler, memberCounts, membersOfStage } from "./host-chain.js";
export { cutSnapshot, isEmptySnapshot, joinSnapshots, joinable } from "./chain-snapshots.js";
export { ALIGN_BEHIND, HOPS_IN_FLIGHT, createStageInstance, decodeEnvelope } from "./host.js";
export {
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  markerSignedBy,
  readIdleMarker,
  signIdleMarker,
} from "./idle-marker.js";
export { createHostOutputs } from "./outputs.js";
export { createHostReaders, subjectMatches } from "./readers.js";
export { NO_OUTPUT, createStageHandler, loadStageHandler } from "./stage-adapter.js";
export { startHostTimers } from "./timers.js";

export type { AlignGroups, AlignedInput } from "./align.js";
export type { ChainHandler } from "./host-chain.js";
export type { PlainSnapshot } from "./chain-snapshots.js";
export type {
  Envelope,
  HostDeps,
  HostFaults,
  HostMetrics,
  InputMessage,
  PoisonLedger,
  StageHandler,
  StageInstance,
  StageOutput,
  StageSpec,
} from "./host.js";
export type { ConsumerView, IdleMarker, IdleOptions } from "./idle-marker.js";
export type { AdaptedHandler, PortTopology } from "./stage-adapter.js";
export type {
  HopPublishOptions,
  HopPublisher,
  HostTransport,
  InputSource,
  SourceMessage,
  SourceOptions,
} from "./transport.js";
export type { HostMsg } from "./types.js";
