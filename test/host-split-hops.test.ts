import { describe, expect, it } from "vitest";
import {
  createHostOutputs,
  decodeEnvelope,
  envelopeCodec,
  type HopPublisher,
  type PoisonLedger,
} from "../actors/host/index.js";

/**
 * One input's hop larger than max_payload (a collaborative partition's changes at a crossing
 * with a million new users: megabytes) failed its publish, and the stage restarted into the same
 * failure for ever. With `splitHops` it goes as parts under the limit, in order, with the same
 * `upTo` and ids of their own; without it, as one message (what other readers need).
 */
function outputsWith(splitHops: boolean) {
  const sent: { data: Uint8Array; id: string }[] = [];
  const publisher: HopPublisher = {
    publish(_subject, data, opts) {
      sent.push({ data, id: opts!.msgId! });
      return Promise.resolve();
    },
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const outputs = createHostOutputs({
    stage: "collaborative",
    partition: 3,
    maxRecords: Infinity,
    codec: envelopeCodec(),
    publisher: () => publisher,
    maxPayload: () => 4_000,
    ...(splitHops ? { splitHops } : {}),
    position: () => 17,
    now: () => 0,
    ledger: new Map() as PoisonLedger,
  });
  return { outputs, sent };
}

const records = Array.from({ length: 300 }, (_, s) => ({ s: s + 1, pad: "x".repeat(40) }));

describe("a hop over max_payload", () => {
  it("goes in parts of at most half the limit, in order, with the same upTo, when the stage allows it", () => {
    const { outputs, sent } = outputsWith(true);
    for (const r of records) outputs.out.emit("reco.collab.3", r);
    outputs.flush();
    expect(sent.length).toBeGreaterThan(2);
    for (const m of sent) expect(m.data.length).toBeLessThanOrEqual(2_000);
    const decoded = sent.map((m) => decodeEnvelope<{ s: number }>(m.data));
    expect(decoded.flatMap((d) => d.recs)).toEqual(records);
    expect(new Set(decoded.map((d) => d.upTo))).toEqual(new Set([17]));
    expect(new Set(sent.map((m) => m.id)).size).toBe(sent.length);
  });

  it("goes as one message otherwise", () => {
    const { outputs, sent } = outputsWith(false);
    for (const r of records) outputs.out.emit("reco.collab.3", r);
    outputs.flush();
    expect(sent.length).toBe(1);
    expect(decodeEnvelope<{ s: number }>(sent[0]!.data).recs).toEqual(records);
  });
});
