import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import { sleep } from "./helpers/harness.js";
import { createStageInstance, type PoisonLedger } from "../actors/host/index.js";
import { natsHostTransport } from "../connectors/nats/host-transport.js";
import { createWatermarkHandler } from "../actors/plan/index.js";
import { subjects } from "../actors/contract/index.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { openStateDb } from "../state/index.js";
import { createMetrics } from "../connectors/http/metrics.js";
import { hostMetrics } from "../bin/pipeline/metrics.js";

describe("reco_stage_restore_seconds", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it("says how long a start took to read the instance's snapshot and to build its handler", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    await ensureTopology(nc, await nc.jetstreamManager());
    const dir = await mkdtemp(join(tmpdir(), "reco-restore-metric-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = await openStateDb(dir);
    cleanups.push(() => db.close());
    const metrics = createMetrics();

    // A snapshot read that takes 300 ms (a large state on a busy disk) and a handler that takes
    // 150 ms to build (aggregates rebuilt from the state).
    const snapshots = db.instance("watermark", 3);
    const slowRead = {
      ...snapshots,
      load: async (...args: Parameters<typeof snapshots.load>) => {
        await sleep(300);
        return snapshots.load(...args);
      },
    };
    const inst = createStageInstance(
      {
        stage: "watermark",
        partition: 3,
        stream: STREAMS.hops,
        subject: subjects.parse(3),
        input: "envelope",
        batching: "per-input",
        create: async (state, out) => {
          await sleep(150);
          return createWatermarkHandler(state, out, {
            partition: 3,
            outOfOrdernessMs: 600_000,
            counters: { late: () => undefined },
          });
        },
      },
      {
        transport: natsHostTransport(nc),
        snapshots: slowRead,
        snapshotIntervalMs: 60_000,
        snapshotEveryMessages: 1_000,
        maxAttempts: 3,
        metrics: hostMetrics(metrics, "watermark", 3),
      },
      new Map() as PoisonLedger,
    );
    await inst.actor.start();
    cleanups.push(() => inst.actor.stop());

    const values = (await metrics.registry.getSingleMetric("reco_stage_restore_seconds")!.get())
      .values;
    const part = (name: string) =>
      values.find(
        (v) =>
          v.labels.stage === "watermark" && v.labels.partition === "3" && v.labels.part === name,
      )?.value;
    expect(part("state")).toBeGreaterThanOrEqual(0.29);
    expect(part("state")).toBeLessThan(5);
    expect(part("handler")).toBeGreaterThanOrEqual(0.14);
    expect(part("handler")).toBeLessThan(part("state")!);
  }, 30_000);
});
