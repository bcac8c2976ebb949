import { describe, expect, it } from "vitest";
import { createMemoryLog, subjectMatches } from "../connectors/memory/log.js";
import type { SourceMessage } from "../actors/host/index.js";

/*
 * The in-memory log the driver runs the stage host on (connectors/memory/log.ts): it must deliver
 * as a JetStream consumer does, or the driver's reference comparison proves nothing.
 */

const enc = new TextEncoder();
const tick = () => new Promise((r) => setImmediate(r));

describe("the in-memory log", () => {
  it("should match subjects as NATS does", () => {
    expect(subjectMatches("reco.parse.*", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.parse.*", "reco.parse.3.x")).toBe(false);
    expect(subjectMatches("events.>", "events.view")).toBe(true);
    expect(subjectMatches("events.>", "events")).toBe(false);
    expect(subjectMatches("reco.late", "reco.late")).toBe(true);
  });

  it("should store a message id once and deliver from a sequence on, in order, with counts", async () => {
    const log = createMemoryLog();
    log.addStream("S", ["a.*"]);
    log.publish("a.1", enc.encode("1"), { msgId: "x" });
    log.publish("a.2", enc.encode("2"), { msgId: "y" });
    log.publish("a.1", enc.encode("1 again"), { msgId: "x" }); // a re-send: dropped
    log.publish("a.1", enc.encode("3"));
    expect(log.messages("S").map((m) => m.seq)).toEqual([1, 2, 3]);
    const got: SourceMessage[] = [];
    const src = await log.openSource({
      stream: "S",
      durable: "d",
      filterSubject: "a.1",
      startSeq: 2,
      maxAckPending: 10,
      callback: (m) => got.push(m),
    });
    expect(got).toEqual([]); // never inside the caller's turn
    await tick();
    log.publish("a.1", enc.encode("4"));
    await tick();
    expect(got.map((m) => [m.seq, m.info.deliverySequence, m.info.pending])).toEqual([
      [3, 1, 0],
      [4, 2, 0],
    ]);
    await src.close();
    log.publish("a.1", enc.encode("5"));
    await tick();
    expect(got).toHaveLength(2);
    await expect(src.closed()).resolves.toBeUndefined();
  });

  it("should keep the newest value per KV key and tell watchers", () => {
    const log = createMemoryLog();
    const seen: [string, unknown][] = [];
    log.watchKv("b", (k, v) => seen.push([k, v]));
    log.publish("$KV.b.i.p1", enc.encode(JSON.stringify({ n: 1 })));
    log.publish("$KV.b.i.p1", enc.encode(JSON.stringify({ n: 2 })));
    expect([...log.kv("b")]).toEqual([["i.p1", { n: 2 }]]);
    expect(seen).toEqual([
      ["i.p1", { n: 1 }],
      ["i.p1", { n: 2 }],
    ]);
  });
});
