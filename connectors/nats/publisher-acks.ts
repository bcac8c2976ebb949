/** Reading a PubAck: the JSON the stream answers a publish with, as an ack or an error. */

import { JetStreamPublishError } from "./publisher-errors.js";
import type { PubAckInfo } from "./publisher-types.js";

interface RawPubAck {
  stream?: string;
  seq?: number;
  duplicate?: boolean;
  error?: { code?: number; err_code?: number; description?: string };
}

const decoder = new TextDecoder();

/** The PubAck `data` of a publish to `subject`: the ack, or the stream's error. */
export function readPubAck(subject: string, data: Uint8Array): PubAckInfo | JetStreamPublishError {
  let raw: RawPubAck;
  try {
    raw = JSON.parse(decoder.decode(data)) as RawPubAck;
  } catch (cause) {
    return new JetStreamPublishError(subject, "unparsable PubAck", undefined, undefined, {
      cause,
    });
  }
  if (raw.error !== undefined) {
    const { code, err_code: errCode, description } = raw.error;
    return new JetStreamPublishError(subject, description ?? "unknown error", code, errCode);
  }
  return { stream: raw.stream ?? "", seq: raw.seq ?? 0, duplicate: raw.duplicate === true };
}
