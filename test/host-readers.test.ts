import { describe, expect, it } from "vitest";
import {
  createHostReaders,
  createStageInstance,
  decodeEnvelope,
  encodeEnvelope,
  subjectMatches,
  type Envelope,
  type PoisonLedger,
} from "../actors/host/index.js";
import { createMemoryLog, type MemoryLog } from "../connectors/memory/log.js";
import { forgetfulStore } from "../bin/pipeline/driver.js";

/**
 * A parse hop is read by its partition's stages (reco.parse.3) and by the
 * merged stages' wildcard input (reco.parse.*); all of them count as its readers, so it is
 * decoded once for all.
 */
describe("readers of a hop message in this process", () => {
  it("matches NATS filter subjects", () => {
    expect(subjectMatches("reco.parse.*", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.parse.3", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.parse.3", "reco.parse.4")).toBe(false);
    expect(subjectMatches("reco.parse.*", "reco.parse.3.x")).toBe(false);
    expect(subjectMatches("reco.>", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.>", "reco")).toBe(false);
    expect(subjectMatches("events.*", "reco.parse.3")).toBe(false);
  });

  it("counts the readers of every filter that matches, in the message's stream only", () => {
    const r = createHostReaders();
    const gone = [
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.*"),
      r.add("HOPS", "reco.parse.*"),
      r.add("HOPS", "reco.items.3"),
      r.add("EVENTS", "events.>"),
    ];
    expect(r.of("HOPS", "reco.parse.3")).toBe(5);
    expect(r.of("HOPS", "reco.parse.4")).toBe(2);
    expect(r.of("HOPS", "reco.items.3")).toBe(1);
    expect(r.of("EVENTS", "events.view")).toBe(1);
    expect(r.of("OTHER", "reco.parse.3")).toBe(0);
    // An instance that stops is no longer counted (once, however often its undo runs).
    gone[3]!();
    gone[3]!();
    expect(r.of("HOPS", "reco.parse.3")).toBe(4);
    gone[0]!();
    expect(r.of("HOPS", "reco.parse.3")).toBe(3);
    expect(r.of("HOPS", "reco.parse.4")).toBe(1);
  });
});

/**
 * Two apps in one process, each on its own server (nats-stall.test.ts runs an engine and its
 * reference side by side): HOPS sequence 109 on reco.parse.0 was an idle marker's hop on both,
 * of the same length, and the stalled engine's collaborative/0 took the reference's decoding of
 * it (another `upTo` and marker). Its next hop then waited for ever for the one before it, and
 * the model was never trained on the second feed. Readers share a decoding only with the readers
 * of the same transport.
 */
describe("readers of one transport and of another", () => {
  /** A stage instance on `log` that keeps the envelopes of the hops it reads. */
  const reader = (log: MemoryLog, partition: number, seen: Envelope<unknown>[]) =>
    createStageInstance(
      {
        stage: "reader",
        partition,
        stream: "HOPS",
        subject: "reco.parse.0",
        input: "raw",
        batching: "per-input",
        create: () => ({ handle: (msg) => void seen.push(decodeEnvelope(msg.data)) }),
      },
      {
        transport: log,
        snapshots: forgetfulStore(),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );

  it("never hands a reader another transport's message at the same stream sequence", async () => {
    const logs = [createMemoryLog(), createMemoryLog()];
    const seen: Envelope<unknown>[][] = [[], [], []];
    for (const log of logs) log.addStream("HOPS", ["reco.parse.*"]);
    // Two readers of the first log's messages, one of the second's.
    const instances = [reader(logs[0]!, 0, seen[0]!), reader(logs[0]!, 1, seen[1]!)];
    instances.push(reader(logs[1]!, 0, seen[2]!));
    for (const inst of instances) await inst.actor.start();
    // The same sequence, subject and length, not the same hop: an idle marker's on each.
    logs[0]!.publish("reco.parse.0", encodeEnvelope(3004, 7, [], 3003, false, [3004, 111]));
    logs[1]!.publish("reco.parse.0", encodeEnvelope(3006, 7, [], 3005, false, [3006, 222]));
    for (let t = 0; seen.some((s) => s.length === 0) && t < 200; t++)
      await new Promise((r) => setTimeout(r, 5));
    for (const inst of instances) await inst.actor.stop();
    expect(seen[0]!.map((e) => [e.upTo, e.ix])).toEqual([[3004, [3004, 111]]]);
    expect(seen[2]!.map((e) => [e.upTo, e.ix])).toEqual([[3006, [3006, 222]]]);
    // The readers of one transport still decode its message once.
    expect(seen[1]![0]).toBe(seen[0]![0]);
  });
});
