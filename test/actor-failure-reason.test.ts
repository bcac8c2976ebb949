import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { probeStage } from "./helpers/probe-stage.js";

/**
 * Bench step 2 (RESULTS.md at 2e6f42d) ended with "FAILED actor watermark/0 failed" and nothing
 * else: the final snapshots were refused by an instance that had failed, and the refusal's
 * message did not say why (the reason sat in `cause`, which nobody printed). A failed actor's
 * refusal now names its reason in the message itself.
 */
describe("an instance that failed", () => {
  const cleanups = useCleanups();

  it("refuses a snapshot with the reason it failed", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "IN", subjects: ["in.>"], storage: StorageType.File });
    const db = await tempStateDb(cleanups, "reco-failure-reason-");
    const inst = probeStage(nc, db);
    cleanups.add(() => inst.actor.stop());
    await inst.actor.start();
    // Its consumer deleted on the server (an operator, a server that lost it): the input ends.
    await jsm.consumers.delete("IN", "probe_0");
    await waitFor(() => inst.actor.getStatus() === "failed", "the instance to fail", 20_000);

    const refused = await inst.snapshotNow().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/^actor probe\/0 failed: .*consumer.*probe_0/i);
    expect(String(refused)).toMatch(/consumer/i);
  }, 30_000);
});
