import { describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, Events } from "nats";
import { tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { startEmbeddedNats } from "../connectors/nats/embedded-server.js";
import { createStageInstance, type PoisonLedger, encodeEnvelope } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { mergedStageSpec, collaborativeStage, parseInput } from "../actors/stages/index.js";
import { subjects } from "../actors/contract/index.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";

/**
 * Bench step 2 (RESULTS.md at 2e6f42d: "actor watermark/0 failed" at the final snapshots): in a
 * catch-up, every stage input of the app's one NATS connection had up to 256 hop messages of up
 * to ~100 KB in flight, 25-50 MB queued at the server for that connection. The app reads its
 * socket as fast as it processes, so at load 5-10 the server could not write that within its
 * write deadline (10 s): "Slow Consumer Detected", the connection closed, deliveries lost, and
 * every stage restarted (before that, heartbeats queued behind the data were "missed" and
 * consumers declared lost). A hop input now keeps a few messages in flight.
 *
 * Here: four stage instances read the same 120 parse hops of 64 KB, two as hop inputs (history,
 * drift) and two as the merged stages read every partition's (covisit, collaborative,
 * prequential: a raw input, which had 4096 in flight), handling each in 15 ms, against a server
 * whose write deadline is 1 s. Before, ~25 MB waited for a reader of ~4 MB/s.
 */

const HOPS = 120;
const READERS = 4;
const SUBJECT = subjects.parse(0);

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // a stage's work on a large hop, holding the loop as it does
  }
};

describe("hop inputs on one connection, in a catch-up", () => {
  const cleanups = useCleanups();

  it("keep little in flight: a slow reader is never cut off as a slow consumer", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-credit-"));
    cleanups.add(() => rm(dir, { recursive: true, force: true }));
    const conf = join(dir, "nats.conf");
    await writeFile(conf, 'write_deadline: "1s"\n');
    const serverLog: string[] = [];
    const server = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "store"),
      extraArgs: ["-c", conf],
      onLog: (chunk) => serverLog.push(chunk),
    });
    cleanups.add(() => server.stop());
    const nc = await connect({ servers: server.url });
    cleanups.add(() => nc.close());
    await ensureTopology(nc, await nc.jetstreamManager());

    // 120 hops of ~64 KB (the size of a catch-up's full hops), published before any reader.
    const pub = createJetStreamPublisher(nc);
    const filler = "x".repeat(64 * 1024 - 200);
    await pub.publishMany(
      Array.from({ length: HOPS }, (_, k) => ({
        subject: SUBJECT,
        data: encodeEnvelope(k + 1, k + 1, [{ pad: filler }], k),
      })),
    );
    await pub.close();

    const connection: string[] = [];
    void (async () => {
      for await (const s of nc.status())
        if (s.type === Events.Disconnect || s.type === Events.Reconnect) connection.push(s.type);
    })();

    const db = await tempStateDb(cleanups, "reco-credit-state-");
    const errors: string[] = [];
    const handled = new Array<number>(READERS).fill(0);
    const readers = Array.from({ length: READERS }, (_, r) => {
      const handler = () => ({
        handle: () => {
          busy(15);
          handled[r]!++;
        },
      });
      const merged = mergedStageSpec(collaborativeStage, STREAMS.hops, parseInput(1), () => {
        throw new Error("not built: this reader's handler is the slow one above");
      });
      const inst = createStageInstance(
        r % 2 === 0
          ? {
              stage: `reader${r}`,
              partition: 0,
              stream: STREAMS.hops,
              subject: SUBJECT,
              input: "envelope",
              batching: "per-input",
              create: handler,
            }
          : { ...merged, stage: `merged${r}`, create: handler },
        {
          transport: natsHostTransport(nc),
          snapshots: db.instance(`reader${r}`, 0),
          snapshotIntervalMs: 600_000,
          snapshotEveryMessages: 1_000_000,
          maxAttempts: 3,
        },
        new Map() as PoisonLedger,
      );
      inst.actor.events$.subscribe((e) => {
        if (e.type === "error") errors.push(`${inst.actor.id}: ${String(e.error)}`);
      });
      cleanups.add(() => inst.actor.stop());
      return inst;
    });
    await Promise.all(readers.map((i) => i.actor.start()));
    await waitFor(
      () => handled.every((n) => n >= HOPS) || errors.length > 0,
      "every reader through every hop (or one failed)",
      60_000,
    ).catch((err: unknown) => {
      throw new Error(
        `${String(err)}: handled ${handled.join(",")}, connection ${connection.join(",")}, ` +
          `positions ${readers.map((i) => i.position()).join(",")}, ${serverLog.join("").slice(-600)}`,
      );
    });
    expect(errors).toEqual([]);
    expect(connection).toEqual([]);
    expect(serverLog.join("")).not.toMatch(/Slow Consumer/);
    expect(readers.map((i) => i.actor.getStatus())).toEqual(new Array(READERS).fill("running"));
  }, 90_000);
});
