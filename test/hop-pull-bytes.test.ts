import { describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { connect } from "nats";
import { tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { startEmbeddedNats } from "../connectors/nats/embedded-server.js";
import {
  createStageInstance,
  HOPS_IN_FLIGHT,
  pullBytes,
  type PoisonLedger,
} from "../actors/host.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { encodeEnvelope } from "../actors/envelope.js";
import { subjects } from "../actors/subjects.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import type { HostTransport } from "../actors/host-transport.js";

/**
 * A hop input keeps HOPS_IN_FLIGHT (16) messages in flight so that small live hops do not wait
 * a loop round trip each (bench/README, freshness), and bounds its pulls in bytes so that a
 * catch-up of full hops does not queue 16 of them per input at the server for the app's one
 * socket (session 8 lost a consumer that way: test/hop-input-credit.test.ts).
 *
 * Here a slow reader (each hop holds the loop 12 ms) catches up on 80 hops of ~30 KB against a
 * real nats-server whose max_payload is 64 KiB, with a pull bound of 160 KiB (5 such hops).
 * While it reads, the server's delivered count is sampled on a second connection and compared
 * with what the reader's client had received when the sample was asked for: hops the server
 * sent that the client has not read yet, at most. That never exceeds the bound; with 16 in
 * flight and no byte bound it reached 14-16 hops (~420-480 KB).
 */

const HOPS = 80;
const HOP_BYTES = 30 * 1024;
const BOUND = 160 * 1024;
const SUBJECT = subjects.parse(0);

/**
 * Sent by the server and not yet received by the reader's client, in hops: the consumer's
 * delivered count against the reader's received count read just before asking (an upper bound:
 * the reader may receive more before the server answers, never less).
 */
const SAMPLER = `
const { workerData, parentPort } = require("node:worker_threads");
const { connect } = require("nats");
(async () => {
  const { url, stream, shared } = workerData;
  const nc = await connect({ servers: url });
  const jsm = await nc.jetstreamManager();
  parentPort.postMessage("ready");
  for (;;) {
    const before = Atomics.load(shared, 0);
    try {
      const ci = await jsm.consumers.info(stream, "reader_0");
      const out = ci.delivered.consumer_seq - before;
      if (out > Atomics.load(shared, 1)) Atomics.store(shared, 1, out);
      Atomics.add(shared, 2, 1);
    } catch {
      // not placed yet
    }
    await new Promise((r) => setTimeout(r, 2));
  }
})();
`;

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // a stage's work on a large hop, holding the loop as it does
  }
};

describe("hop input pulls bounded in bytes", () => {
  const cleanups = useCleanups();

  it("a catch-up never has more than the bound sent and not yet received", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-pullbytes-"));
    cleanups.add(() => rm(dir, { recursive: true, force: true }));
    const conf = join(dir, "nats.conf");
    await writeFile(conf, "max_payload: 65536\n");
    const server = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "store"),
      extraArgs: ["-c", conf],
    });
    cleanups.add(() => server.stop());
    const nc = await connect({ servers: server.url });
    cleanups.add(() => nc.close());
    const watch = await connect({ servers: server.url });
    cleanups.add(() => watch.close());
    const jsm = await watch.jetstreamManager();
    await ensureTopology(nc, await nc.jetstreamManager());
    expect(nc.info?.max_payload).toBe(65536);
    // The bound is the setting here (above the floor of max_payload + a delivery's overhead).
    expect(pullBytes(BOUND, 65536)).toBe(BOUND);
    expect(pullBytes(1024, 65536)).toBeGreaterThan(65536);

    const pub = createJetStreamPublisher(nc);
    const filler = "x".repeat(HOP_BYTES - 200);
    await pub.publishMany(
      Array.from({ length: HOPS }, (_, k) => ({
        subject: SUBJECT,
        data: encodeEnvelope(k + 1, k + 1, [{ pad: filler }], k),
      })),
    );
    await pub.close();
    const stored = await jsm.streams.getMessage(STREAMS.hops, { seq: 1 });
    const hopSize = stored.data.length;

    // Every pull the reader's consumer gets, as the server sees it (a second connection).
    const pulls: { batch: number; max_bytes?: number }[] = [];
    const snoop = watch.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${STREAMS.hops}.reader_0`, {
      callback: (_err, m) => pulls.push(m.json()),
    });
    cleanups.add(() => snoop.unsubscribe());

    // Deliveries the reader's client has received (its input's callback), shared with the
    // sampler: a worker thread with its own loop and connection, so it samples while the
    // reader's loop is held by a hop, and asks the server the moment it reads the count.
    const shared = new Int32Array(new SharedArrayBuffer(12)); // received, max outstanding, samples
    const sampler = new Worker(SAMPLER, {
      eval: true,
      workerData: { url: server.url, stream: STREAMS.hops, shared },
    });
    cleanups.add(() => sampler.terminate());
    await new Promise((resolve) => sampler.once("message", resolve)); // connected
    const base = natsHostTransport(nc);
    const transport: HostTransport = {
      ...base,
      openSource: (o) =>
        base.openSource({
          ...o,
          callback: (m) => {
            Atomics.add(shared, 0, 1);
            o.callback(m);
          },
        }),
    };

    const db = await tempStateDb(cleanups, "reco-pullbytes-state-");
    const errors: string[] = [];
    const seen: number[] = [];
    const inst = createStageInstance(
      {
        stage: "reader",
        partition: 0,
        stream: STREAMS.hops,
        subject: SUBJECT,
        input: "envelope",
        batching: "per-input",
        create: () => ({
          handle: (msg) => {
            busy(12);
            seen.push(msg.seq);
          },
        }),
      },
      {
        transport,
        snapshots: db.instance("reader", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
        hopPullBytes: BOUND,
      },
      new Map() as PoisonLedger,
    );
    inst.actor.events$.subscribe((e) => {
      if (e.type === "error") errors.push(String(e.error));
    });
    cleanups.add(() => inst.actor.stop());

    await inst.actor.start();
    await waitFor(() => seen.length >= HOPS || errors.length > 0, "the reader through every hop");
    await sampler.terminate();
    const maxOutstanding = Atomics.load(shared, 1);
    const samples = Atomics.load(shared, 2);

    expect(errors).toEqual([]);
    expect(seen).toEqual(Array.from({ length: HOPS }, (_, k) => k + 1));
    expect(samples).toBeGreaterThan(10);
    // The bound holds at the server: never more than BOUND bytes of hops sent and unread.
    expect(maxOutstanding * hopSize).toBeLessThanOrEqual(BOUND);
    // It is what limited it: 16 may be in flight, and the reader was behind all along.
    expect(HOPS_IN_FLIGHT).toBe(16);
    expect(Math.floor(BOUND / hopSize)).toBeLessThan(HOPS_IN_FLIGHT);
    expect(maxOutstanding).toBeGreaterThanOrEqual(2);
    // Every pull asked for bytes, within the bound.
    expect(pulls.length).toBeGreaterThan(0);
    for (const p of pulls) {
      expect(p.max_bytes).toBeGreaterThan(0);
      expect(p.max_bytes).toBeLessThanOrEqual(BOUND);
    }
  }, 60_000);
});
