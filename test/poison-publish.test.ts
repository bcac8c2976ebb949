import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import {
  createStageInstance,
  type PoisonLedger,
  type StageInstance,
} from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import type { StageHandler } from "../actors/host/index.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { createSupervisor } from "../runtime/index.js";
import { openStateDb } from "../state/index.js";

/*
 * "any message that fails N times goes to poison". A failure need not be a
 * throw of the handler: an output of one input that the server refuses for good (here a stream
 * whose max_msg_size the output exceeds) failed the instance at every snapshot, and the input was
 * replayed for ever. Such a failure now counts against its input, which reaches reco.dlq.poison
 * after MAX_ATTEMPTS while the instance goes on with the next messages.
 */

describe("a message whose output the server refuses for good", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it("goes to reco.dlq.poison after MAX_ATTEMPTS, and the stage flows on", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await ensureTopology(nc, jsm);
    await jsm.streams.add({ name: "T17_IN", subjects: ["t17.in"] });
    await jsm.streams.add({ name: "T17_OUT", subjects: ["t17.out"], max_msg_size: 200 });
    const dir = await mkdtemp(join(tmpdir(), "reco-poison-publish-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = await openStateDb(dir);
    cleanups.push(() => db.close());

    let handled = 0;
    const ledger: PoisonLedger = new Map();
    let inst: StageInstance<StageHandler> | undefined;
    const supervisor = createSupervisor({
      id: "test",
      restart: { count: 50, period: 60_000, delay: 20, maxDelay: 100 },
    });
    cleanups.push(() => supervisor.stop());
    supervisor.supervise("copy/0", () => {
      inst = createStageInstance<StageHandler>(
        {
          stage: "copy",
          partition: 0,
          stream: "T17_IN",
          subject: "t17.in",
          input: "raw",
          batching: "per-input",
          create: (_state, out) => ({
            handle(msg) {
              handled++;
              out.raw("t17.out", msg.data, {}, `copy.${msg.seq}`);
            },
          }),
        },
        {
          transport: natsHostTransport(nc),
          snapshots: db.instance("copy", 0),
          snapshotIntervalMs: 100,
          snapshotEveryMessages: 1,
          maxAttempts: 3,
        },
        ledger,
      );
      return inst.actor;
    });

    const js = nc.jetstream();
    const big = new Uint8Array(500).fill(0x61);
    await js.publish("t17.in", new TextEncoder().encode("small 1"));
    await js.publish("t17.in", big);
    await js.publish("t17.in", new TextEncoder().encode("small 2"));

    // Done once the poison copy is stored and a snapshot covers the last input.
    const until = Date.now() + 20_000;
    const done = async () =>
      (await jsm.streams.info(STREAMS.dlq)).state.messages > 0 &&
      (await inst?.snapshotNow().then(
        () => inst!.position() === 3,
        () => false,
      ));
    while (Date.now() < until && !(await done())) await new Promise((r) => setTimeout(r, 50));
    expect(inst?.position()).toBe(3);

    const dlq = await jsm.streams.info(STREAMS.dlq);
    expect(dlq.state.messages).toBe(1);
    const poison = await jsm.streams.getMessage(STREAMS.dlq, { seq: dlq.state.first_seq });
    expect(poison.subject).toBe("reco.dlq.poison");
    expect(poison.header.get("Reco-Seq")).toBe("2");
    expect(poison.header.get("Reco-Error")).toMatch(/t17\.out/);
    expect(poison.data).toEqual(big);
    const out = await jsm.streams.info("T17_OUT");
    expect(out.state.messages).toBe(2);
    // The big one was handled MAX_ATTEMPTS times (then poisoned without reaching the handler).
    expect(handled).toBeGreaterThanOrEqual(2 + 3);
    expect(ledger.size).toBe(0);
    // The count kept with the snapshot matches the stream.
    expect(inst!.stats().poison).toBe(1);
  }, 40_000);
});
