/**
 * The publisher's bookkeeping records: a message from its publish to its settlement (across
 * re-sends), and a flush() waiting for the messages published before it.
 */

import type { MsgHdrs } from "nats";
import type { PubAckInfo } from "./publisher-types.js";

export interface Entry {
  /** Reply token, kept across retries so a late ack of an earlier attempt still counts. */
  readonly token: number;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly hdrs: MsgHdrs | undefined;
  /** Has a Nats-Msg-Id: the server dedupes a re-send. */
  readonly retriable: boolean;
  /** An upsert (PublishOptions.upsert): re-sent only while the newest of its subject. */
  readonly upsert: boolean;
  /** Upserts of the same subject superseded while in flight: they settle as this one does. */
  followers: Entry[] | undefined;
  /** How it settled (an upsert's, for older ones of its subject that time out after it). */
  outcome: { ack?: PubAckInfo; err?: Error } | undefined;
  attempts: number;
  /**
   * The server (its id) whose 503 answered an attempt with no reconnect seen since, or undefined
   * (see RECONNECT_503_MS).
   */
  noResponders: string | undefined;
  deadline: number;
  onAck: (ack: PubAckInfo) => void;
  onError: (err: Error) => void;
}

export interface FlushWaiter {
  /** Messages published before the flush still unsettled. */
  remaining: number;
  /** Last token published before the flush. */
  target: number;
  resolve: () => void;
  reject: (err: Error) => void;
}
