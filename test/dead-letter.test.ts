import { describe, expect, it } from "vitest";
import { headers as natsHeaders } from "nats";
import { fitRawOutput, isPermanentPublishError } from "../actors/host/index.js";
import {
  JetStreamPublishError,
  NoStreamError,
  PublishTimeoutError,
  PublisherClosedError,
} from "../connectors/nats/publisher.js";

/** A dead letter (or poison copy) always fits the server's max_payload. */

const MAX = 1024 * 1024;

/** What the server counts: the header block as nats.js encodes it, plus the body. */
function wireSize(data: Uint8Array, headers: Record<string, string>, msgId: string): number {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(headers)) h.set(k, v);
  h.set("Nats-Msg-Id", msgId);
  return (h as unknown as { encode(): Uint8Array }).encode().length + data.length;
}

const reco = { "Reco-Reason": "event_too_large", "Reco-Subject": "events.view", "Reco-Seq": "42" };

describe("fitRawOutput", () => {
  it("leaves a message that fits as it is (same bytes, same headers)", () => {
    const data = new Uint8Array(1000).fill(7);
    const fit = fitRawOutput(data, reco, "dlq.parse.42", MAX);
    expect(fit.data).toBe(data);
    expect(fit.headers).toBe(reco);
  });

  it("truncates a 1,048,570-byte event to fit, saying so in its headers", () => {
    const data = new Uint8Array(1_048_570).fill(1);
    expect(wireSize(data, reco, "dlq.parse.42")).toBeGreaterThan(MAX);
    const fit = fitRawOutput(data, reco, "dlq.parse.42", MAX);
    expect(wireSize(fit.data, fit.headers, "dlq.parse.42")).toBeLessThanOrEqual(MAX);
    expect(fit.data.length).toBeGreaterThan(MAX - 1024);
    expect(fit.headers).toEqual({
      ...reco,
      "Reco-Truncated": "true",
      "Reco-Original-Size": "1048570",
    });
  });

  it("drops original headers that take most of the room, keeping the engine's own", () => {
    const orig = { "X-Big": "v".repeat(700_000), "Reco-Orig-Nats-Expected-Stream": "EVENTS" };
    const headers = { ...orig, ...reco };
    const data = new Uint8Array(400_000);
    const fit = fitRawOutput(data, headers, "poison.parse.0.42", MAX);
    expect(wireSize(fit.data, fit.headers, "poison.parse.0.42")).toBeLessThanOrEqual(MAX);
    expect(fit.headers["X-Big"]).toBeUndefined();
    expect(fit.headers["Reco-Orig-Nats-Expected-Stream"]).toBeUndefined();
    expect(fit.headers["Reco-Reason"]).toBe("event_too_large");
    expect(Number(fit.headers["Reco-Headers-Dropped"])).toBeGreaterThan(700_000);
    // The body then fits whole.
    expect(fit.data.length).toBe(data.length);
  });

  it("counts multi-byte header values in bytes", () => {
    const headers = { ...reco, "Reco-Error": "é".repeat(1000) };
    const data = new Uint8Array(MAX - 1500);
    const fit = fitRawOutput(data, headers, "x", MAX);
    expect(wireSize(fit.data, fit.headers, "x")).toBeLessThanOrEqual(MAX);
  });
});

describe("isPermanentPublishError", () => {
  it("is true for what repeating cannot cure: server refusals and client size or syntax errors", () => {
    expect(
      isPermanentPublishError(new JetStreamPublishError("s", "maximum message size", 400, 10054)),
    ).toBe(true);
    const tooBig = Object.assign(new Error("MAX_PAYLOAD_EXCEEDED"), {
      code: "MAX_PAYLOAD_EXCEEDED",
    });
    expect(
      isPermanentPublishError(
        new JetStreamPublishError("s", "x", undefined, undefined, { cause: tooBig }),
      ),
    ).toBe(true);
  });
  it("is false for what heals: timeouts, no responders, a closed connection", () => {
    expect(isPermanentPublishError(new PublishTimeoutError("s", 5000, 4))).toBe(false);
    expect(isPermanentPublishError(new NoStreamError("s"))).toBe(false);
    expect(isPermanentPublishError(new PublisherClosedError("closed"))).toBe(false);
    const closed = Object.assign(new Error("closed"), { code: "CONNECTION_CLOSED" });
    expect(
      isPermanentPublishError(
        new JetStreamPublishError("s", "x", undefined, undefined, { cause: closed }),
      ),
    ).toBe(false);
  });
});
