import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { probeStage } from "./helpers/probe-stage.js";

/**
 * Bench step 6b (RESULTS.md at 2e6f42d) reported "-21,449 events replayed by parse": it took the
 * restored position as the position less the events processed since the restart, from two
 * scrapes taken while parse was still catching up. An instance now tells the position its
 * snapshot restored (reco_stage_restored_position), which the bench subtracts from the position
 * at the kill.
 */
describe("a restarted stage instance", () => {
  const cleanups = useCleanups();

  const instance = probeStage;

  it("tells the position its snapshot restored, however far it has moved since, and the one its snapshot on disk covers", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const db = await tempStateDb(cleanups, "reco-restored-");
    const js = nc.jetstream();
    const first = instance(nc, db);
    await first.actor.start();
    expect(first.restoredPosition()).toBe(0);
    for (let i = 0; i < 5; i++) await js.publish("in.x", `m${i}`);
    await waitFor(() => first.position() === 5, "five processed");
    expect(first.snapshotPosition()).toBe(0);
    await first.snapshotNow();
    expect(first.snapshotPosition()).toBe(5);
    for (let i = 5; i < 8; i++) await js.publish("in.x", `m${i}`);
    await waitFor(() => first.position() === 8, "eight processed");
    // What its snapshot on disk covers (what the archive copies): still 5.
    expect(first.snapshotPosition()).toBe(5);
    // A crash: no snapshot of 6-8.
    await first.actor.stop();

    const second = instance(nc, db);
    cleanups.add(() => second.actor.stop());
    expect(second.restoredPosition()).toBe(-1);
    await second.actor.start();
    for (let i = 8; i < 12; i++) await js.publish("in.x", `m${i}`);
    await waitFor(() => second.position() === 12, "everything processed again");
    expect(second.restoredPosition()).toBe(5);
    expect(second.snapshotPosition()).toBe(5);
    await second.snapshotNow();
    expect(second.snapshotPosition()).toBe(12);
    // What the restart replayed: the position at the crash less the restored one.
    expect(8 - second.restoredPosition()).toBe(3);
  }, 30_000);
});
