import type { Envelope, InputMessage } from "../../actors/host/index.js";
import type { createJoinHandler, ProfileRecord } from "../../actors/stages/index.js";

const enc = new TextEncoder();

/** Feeds popularity-join's handler one interest-ranking hop of `recs` at position `seq`. */
export function feedJoin(
  h: ReturnType<typeof createJoinHandler>,
  seq: number,
  recs: ProfileRecord[],
  wm: number,
): void {
  const env: Envelope<ProfileRecord> = { upTo: seq, wm, recs };
  const msg: InputMessage = {
    seq,
    subject: "reco.interest-ranking.0",
    data: enc.encode(JSON.stringify(env)),
    headers: {},
  };
  h.handle(msg, seq - 1);
}
