import { deadLetterHeaders } from "./dead-letter.js";
import type { PoisonLedger } from "./outputs.js";
import type { SourceMessage } from "./transport.js";
import type { StageOutput } from "./types.js";

/** A message's headers, first value of each. */
export function headersOf(m: Pick<SourceMessage, "headers">): Record<string, string> {
  const hdrs: Record<string, string> = {};
  if (m.headers) for (const [k, v] of m.headers) hdrs[k] = v[0] ?? "";
  return hdrs;
}

/** A message that failed its handler, as the poison DLQ keeps it. */
export interface FailingMessage {
  stage: string;
  partition: number;
  seq: number;
  subject: string;
  data: Uint8Array;
  headers: SourceMessage["headers"];
}

/**
 * A message that failed `maxAttempts` times: it goes to reco.dlq.poison instead of stalling the
 * partition. One whose poison copy was refused as many times again is skipped, loudly: nothing
 * more can keep it, and the instance would otherwise fail for ever.
 */
export function setAside(
  m: FailingMessage,
  failed: { attempts: number; error: string },
  o: {
    out: StageOutput;
    ledger: PoisonLedger;
    maxAttempts: number;
    log?: (obj: object, msg: string) => void;
    poisoned?: () => void;
  },
): void {
  const { stage, partition, seq } = m;
  if (failed.attempts >= 2 * o.maxAttempts) {
    o.log?.(
      { stage, partition, seq, subject: m.subject, error: failed.error },
      "message skipped: neither it nor its poison copy can be published",
    );
    o.out.count("poison_unpublishable");
    o.ledger.delete(seq);
    return;
  }
  o.out.raw(
    "reco.dlq.poison",
    m.data,
    {
      ...deadLetterHeaders(headersOf(m)),
      "Reco-Stage": stage,
      "Reco-Partition": String(partition),
      "Reco-Subject": m.subject,
      "Reco-Seq": String(seq),
      "Reco-Error": failed.error.slice(0, 1000),
    },
    `poison.${stage}.${partition}.${seq}`,
  );
  // Kept (as a publish failure) until a snapshot covers the poison copy: if that copy is
  // refused too, the next attempt counts on from here.
  o.ledger.set(seq, { ...failed, publish: true });
  o.poisoned?.();
  // Kept with the snapshot like the other counts: exact across restarts (reco_stage_count).
  o.out.count("poison");
}
