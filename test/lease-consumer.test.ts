import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor, sleep } from "./helpers/harness.js";
import { createStageInstance, type PoisonLedger } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { leaseConsumer } from "../bin/pipeline/units.js";
import type { StateDb } from "../state/index.js";
import type { HostTransport } from "../actors/host/index.js";

/**
 * Two owners of one unit at once (a worker whose lease moved on
 * while its stop was slow or forced (STOP_TIMEOUT_MS, a renewal not confirmed in time) still runs,
 * and its supervisor restarts a failed instance. With one consumer name per stage instance, that
 * restart deleted and re-placed the new owner's consumer at the old owner's position: the new
 * owner's input ended, it restarted and did the same back. The consumer is now named after the
 * lease (epoch), and a new lease deletes only older leases' consumers.
 */

describe("a stage instance's input consumer per lease", () => {
  const cleanups = useCleanups();

  const instance = (
    transport: HostTransport,
    db: StateDb,
    consumer: ReturnType<typeof leaseConsumer>,
    seen: number[],
  ) =>
    createStageInstance(
      {
        stage: "probe",
        partition: 0,
        stream: "IN",
        subject: "in.>",
        input: "raw",
        batching: "per-input",
        create: () => ({ handle: (m) => void seen.push(m.seq) }),
      },
      {
        transport,
        snapshots: db.instance("probe", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
        consumer: () => consumer,
      },
      new Map() as PoisonLedger,
    );

  it("keeps the new owner's input when the old owner's instance restarts", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const transport = natsHostTransport(nc);
    const js = nc.jetstream();
    const publish = async (from: number, to: number) => {
      for (let i = from; i <= to; i++) await js.publish("in.x", new TextEncoder().encode(`${i}`));
    };
    // Two workers: each its own state on disk.
    const dbOld = await tempStateDb(cleanups, "reco-lease-old-");
    const dbNew = await tempStateDb(cleanups, "reco-lease-new-");

    const seenOld: number[] = [];
    const old = instance(transport, dbOld, leaseConsumer("probe_0", 1), seenOld);
    cleanups.add(() => old.actor.stop());
    await old.actor.start();
    await publish(1, 5);
    await waitFor(() => seenOld.length === 5, "the old owner's input");

    // The lease moves on (epoch 2) while the old owner still runs.
    const seenNew: number[] = [];
    const owner = instance(transport, dbNew, leaseConsumer("probe_0", 2), seenNew);
    cleanups.add(() => owner.actor.stop());
    await owner.actor.start();
    await waitFor(() => seenNew.length === 5, "the new owner's replay");
    // Its consumer replaced the old lease's: the old owner's input ended.
    await waitFor(() => old.actor.getStatus() === "failed", "the old owner's input to end");

    // The old owner's supervisor restarts its instance (its lease's stop has not come yet).
    const seenRestarted: number[] = [];
    const restarted = instance(transport, dbOld, leaseConsumer("probe_0", 1), seenRestarted);
    cleanups.add(() => restarted.actor.stop());
    await restarted.actor.start();

    await publish(6, 10);
    await waitFor(() => seenNew.length >= 10, "the new owner's input", 10_000);
    await sleep(300);
    expect(owner.actor.getStatus()).toBe("running");
    expect(seenNew).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const names: string[] = [];
    for await (const c of jsm.consumers.list("IN")) names.push(c.name);
    expect(names).toContain("probe_0_e2");
  }, 60_000);

  it("names plain consumers as before and replaces only older leases'", () => {
    expect(leaseConsumer("window_1", undefined)).toEqual({ name: "window_1" });
    const c = leaseConsumer("window_1", 7);
    expect(c.name).toBe("window_1_e7");
    expect(["window_1", "window_1_e3", "window_1_e6"].every((n) => c.stale!(n))).toBe(true);
    for (const n of ["window_1_e7", "window_1_e8", "window_10_e3", "window_1_ex", "window_11"])
      expect(c.stale!(n)).toBe(false);
  });
});
