import { describe, expect, it } from "vitest";
import { StorageType } from "nats";
import { startNats, tempStateDb, useCleanups, waitFor } from "./helpers/harness.js";
import { createStageInstance, type PoisonLedger } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";

/**
 * A handler that holds an input message without applying it (a merged stage's hop waiting for
 * its subject's missing one: StageHandler.heldFrom) keeps the instance's snapshot before it, so
 * a restart reads it again; once it is applied, the snapshot moves past it.
 */
describe("a snapshot while the handler holds an input message", () => {
  const cleanups = useCleanups();

  it("covers input only up to before the message held", async () => {
    const { nc, jsm } = await startNats(cleanups);
    await jsm.streams.add({ name: "HELD", subjects: ["held.in"], storage: StorageType.File });
    const db = await tempStateDb(cleanups, "reco-held-");
    let held: number | undefined;
    const inst = createStageInstance(
      {
        stage: "holder",
        partition: 0,
        stream: "HELD",
        subject: "held.in",
        input: "raw",
        batching: "per-input",
        create: () => ({
          // The second message is held until the fourth comes.
          handle(msg) {
            if (msg.seq === 2) held = 2;
            if (msg.seq === 4) held = undefined;
          },
          heldFrom: () => held,
        }),
      },
      {
        transport: natsHostTransport(nc),
        snapshots: db.instance("holder", 0),
        snapshotIntervalMs: 600_000,
        snapshotEveryMessages: 1_000_000,
        maxAttempts: 3,
      },
      new Map() as PoisonLedger,
    );
    cleanups.add(() => inst.actor.stop());
    await inst.actor.start();
    const js = nc.jetstream();
    for (let i = 1; i <= 3; i++) await js.publish("held.in", new TextEncoder().encode(`${i}`));
    await waitFor(() => inst.position() === 3, "three messages");
    await inst.snapshotNow();
    expect((await db.instance("holder", 0).exportRaw()).meta.seq).toBe(1);
    await js.publish("held.in", new TextEncoder().encode("4"));
    await waitFor(() => inst.position() === 4, "the fourth message");
    await inst.snapshotNow();
    expect((await db.instance("holder", 0).exportRaw()).meta.seq).toBe(4);
  });
});
