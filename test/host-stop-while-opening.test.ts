import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { createStageInstance, type PoisonLedger } from "../actors/host/index.js";
import type { HostTransport, SourceOptions } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { openDurableSource } from "../connectors/nats/source.js";

/**
 * A stage instance stopped while its consumer was being placed waited for every
 * placement attempt (delete and add, each up to the request timeout, four times: up to 40 s on a
 * cluster that lost a node). A unit's handover waits for its instances' stops, and holds its
 * lease meanwhile: the cluster test's rebalance to a new worker timed out so. Opening the input
 * now takes the instance's abort signal.
 */

describe("a stage instance stopped while its input opens", () => {
  const cleanups = useCleanups();

  it("stops without waiting for the consumer's placement", async () => {
    const { nc } = await startNats(cleanups);
    const db = await tempStateDb(cleanups, "reco-stop-opening-");
    let opening: SourceOptions | undefined;
    const real = natsHostTransport(nc);
    // A placement that takes 20 s (a cluster electing leaders), unless given up.
    const transport: HostTransport = {
      ...real,
      openSource: (o) => {
        opening = o;
        return new Promise((_resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("placed too late")), 20_000);
          o.signal?.addEventListener("abort", () => {
            clearTimeout(timer);
            reject(o.signal!.reason);
          });
        });
      },
    };
    const inst = createStageInstance(
      {
        stage: "probe",
        partition: 0,
        stream: "IN",
        subject: "in.>",
        input: "raw",
        batching: "per-input",
        create: () => ({ handle: () => undefined }),
      },
      {
        transport,
        snapshots: db.instance("probe", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );
    const started = inst.actor.start().catch(() => undefined);
    await waitFor(() => opening !== undefined, "the input to open");
    const t0 = Date.now();
    await inst.actor.stop();
    await started;
    expect(Date.now() - t0).toBeLessThan(2_000);
    expect(inst.actor.getStatus()).toBe("stopped");
  }, 30_000);

  it("places no consumer once aborted", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const stop = new AbortController();
    stop.abort(new Error("stopped"));
    await expect(
      openDurableSource(nc, {
        stream: "IN",
        durable: "probe_0",
        filterSubject: "in.>",
        startSeq: 1,
        signal: stop.signal,
      }),
    ).rejects.toThrow("stopped");
    const names: string[] = [];
    for await (const c of jsm.consumers.list("IN")) names.push(c.name);
    expect(names).toEqual([]);
  });
});
