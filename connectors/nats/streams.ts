import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  nanos,
  type ConsumerInfo,
  type JetStreamManager,
  type NatsError,
  type StreamInfo,
} from "nats";

/** JetStream API error code for "stream not found". */
const STREAM_NOT_FOUND = 10059;
/** JetStream API error code for "stream name already in use" (a concurrent add won). */
const STREAM_NAME_IN_USE = 10058;

export const EVENTS_STREAM = "EVENTS";

export interface EnsureEventsStreamOptions {
  /** Replicas in a cluster. Default 1. */
  replicas?: number;
  /** Window in which a repeated `Nats-Msg-Id` is dropped. Default 2 min. */
  duplicateWindowMs?: number;
}

/**
 * Makes sure the `EVENTS` stream (`events.>`, file storage) exists. Idempotent: an existing stream
 * is left exactly as it is (an operator may have tuned it), only a missing one is created.
 */
export async function ensureEventsStream(
  jsm: JetStreamManager,
  opts: EnsureEventsStreamOptions = {},
): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(EVENTS_STREAM);
  } catch (err) {
    if (apiErrCode(err) !== STREAM_NOT_FOUND) throw err;
  }
  try {
    return await jsm.streams.add({
      name: EVENTS_STREAM,
      subjects: ["events.>"],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: opts.replicas ?? 1,
      duplicate_window: nanos(opts.duplicateWindowMs ?? 2 * 60_000),
    });
  } catch (err) {
    if (apiErrCode(err) !== STREAM_NAME_IN_USE) throw err;
    return jsm.streams.info(EVENTS_STREAM);
  }
}

function apiErrCode(err: unknown): number | undefined {
  return (err as Partial<NatsError> | undefined)?.api_error?.err_code;
}

/**
 * Every consumer of `stream` as the server lists them (every page). nats-server lists a
 * consumer that closes while it builds the list as `null` (seen while a stage's consumer was
 * replaced during a replay's wait): those are left out.
 */
export async function consumerInfos(
  jsm: JetStreamManager,
  stream: string,
): Promise<ConsumerInfo[]> {
  const out: ConsumerInfo[] = [];
  for await (const c of jsm.consumers.list(stream) as AsyncIterable<ConsumerInfo | null>)
    if (c !== null && c !== undefined) out.push(c);
  return out;
}
