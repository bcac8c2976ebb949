import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import { createStageInstance, type PoisonLedger } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { createWatermarkHandler } from "../actors/plan/index.js";
import { subjects } from "../actors/contract/index.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { openStateDb } from "../state/index.js";

describe("a stage instance stopped while its snapshot load waits its turn", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  // Regression: start() went on after the load and opened the durable consumer of an instance
  // already stopped (a lease revoked meanwhile). Its abort listener, added after the abort, never
  // fired, so the zombie subscription took deliveries from the unit's next owner.
  it("opens no consumer once the load ends", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await ensureTopology(nc, jsm);
    const dir = await mkdtemp(join(tmpdir(), "reco-stop-loading-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = await openStateDb(dir);
    cleanups.push(() => db.close());

    let release!: () => void;
    const turn = new Promise<void>((resolve) => (release = resolve));
    let loaded = false;
    const inst = createStageInstance(
      {
        stage: "watermark",
        partition: 0,
        stream: STREAMS.hops,
        subject: subjects.parse(0),
        input: "envelope",
        batching: "per-input",
        create: (state, out) =>
          createWatermarkHandler(state, out, {
            partition: 0,
            outOfOrdernessMs: 600_000,
            counters: { late: () => undefined },
          }),
      },
      {
        transport: natsHostTransport(nc),
        snapshots: db.instance("watermark", 0),
        snapshotIntervalMs: 60_000,
        snapshotEveryMessages: 1_000,
        maxAttempts: 3,
        loadInTurn: async (load) => {
          await turn; // other instances' loads come first
          const r = await load();
          loaded = true;
          return r;
        },
      },
      new Map() as PoisonLedger,
    );
    const started = inst.actor.start().catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100));
    const stopped = inst.actor.stop();
    release();
    await started;
    await stopped;
    expect(loaded).toBe(true);
    expect(inst.actor.getStatus()).toBe("stopped");
    await new Promise((r) => setTimeout(r, 300));
    const names: string[] = [];
    for await (const c of jsm.consumers.list(STREAMS.hops)) names.push(c.name);
    expect(names).not.toContain("watermark_0");
  }, 30_000);
});
