import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "nats";
import { pino } from "pino";
import { setupNats } from "./helpers/nats.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { replayFile } from "../bin/replay/run.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import type { CollaborativeView } from "../actors/stages/index.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { sleep } from "./helpers/harness.js";

/**
 * A restart serves the trained ALS model before the trainer's snapshot has loaded: its served
 * models are kept apart from its state (bin/pipeline/model-shelf.ts), and the trainer, whose
 * copies of every partition's rows are the largest snapshot, loads last. Here its load is held
 * 10 s (as a large snapshot would take): the blend's answers, COLLABORATIVE candidates among
 * them, are those of before the restart long before that.
 */
const LOG = resolve(import.meta.dirname, "../../shared/data/rees46/2019-Oct-head.csv");
const ROWS = 1500;
const HOLD_MS = 10_000;

describe("a restarted process with a trained model", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    delete process.env.RECO_TEST_SLOW_START;
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it("serves the trained model from its shelf while the trainer's snapshot still loads", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-shelf-restart-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, ROWS + 1);
    await writeFile(join(dir, "slice.csv"), lines.join("\n") + "\n");
    const cfg = loadConfig({
      NATS_URL: nats.url,
      DATA_DIR: join(dir, "data"),
      GRPC_PORT: String(await freePort()),
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: "2",
      // No idle markers: event time stays where the log leaves it across the restart.
      IDLE_TIMEOUT_MS: "0",
      RETRAIN_INTERVAL_MS: "300000",
      LOG_LEVEL: "silent",
    });
    const first = await startApp(cfg, pino({ level: "silent" }));
    let firstStopped = false;
    cleanups.push(() => (firstStopped ? Promise.resolve() : first.stop()));
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const summary = await replayFile({ file: join(dir, "slice.csv"), nc });
    expect(summary.rejected).toBe(0);
    const trainer = (app: App) =>
      app.pipeline.instance("collaborative-trainer/0")?.handler() as CollaborativeView | undefined;
    // Fed every event, the newest point trained, nothing training.
    for (const until = Date.now() + 90_000; ; await sleep(200)) {
      const st = trainer(first)?.status();
      if (
        st &&
        st.events === summary.sent &&
        st.trainAt > 0 &&
        st.models.implicit === st.trainAt &&
        !trainer(first)!.training()
      )
        break;
      if (Date.now() > until) throw new Error(`not trained: ${JSON.stringify(st)}`);
    }
    const users = [...new Set(lines.slice(1).map((l) => l.split(",")[7]!))]
      .sort()
      .filter((_, x) => x % 10 === 0);
    const ask = async (port: number) => {
      const client = createRecoClient(`127.0.0.1:${port}`, {
        channelOptions: { "grpc.use_local_subchannel_pool": 1 },
      });
      try {
        const out: string[] = [];
        for (const u of users) {
          const r = await client.getRecommendations(u, 10, { deadlineMs: 1000 });
          out.push(JSON.stringify(r.items.map((i) => [i.itemId, i.source, i.score])));
        }
        return out;
      } finally {
        client.close();
      }
    };
    // Answers settle once every source stage has read every hop.
    let want = await ask(first.grpcPort);
    for (let same = 0; same < 3; await sleep(300)) {
      const now = await ask(first.grpcPort);
      same = JSON.stringify(now) === JSON.stringify(want) ? same + 1 : 0;
      want = now;
    }
    expect(want.some((a) => a.includes(`,${Source.COLLABORATIVE},`))).toBe(true);
    const point = trainer(first)!.status().models.implicit;
    await first.stop(); // drains: every stage snapshots
    firstStopped = true;

    process.env.RECO_TEST_SLOW_START = `collaborative-trainer/0:${HOLD_MS}`;
    const grpcPort = cfg.grpcPort;
    const t0 = Date.now();
    let failed: unknown;
    let second: App | undefined;
    void startApp(cfg, pino({ level: "silent" })).then(
      (app) => {
        second = app;
        cleanups.push(() => app.stop());
      },
      (err: unknown) => (failed = err),
    );
    let got: string[] = [];
    let rightAfter = NaN;
    while (Date.now() - t0 < HOLD_MS + 20_000 && failed === undefined) {
      got = await ask(grpcPort).catch(() => []);
      if (JSON.stringify(got) === JSON.stringify(want)) {
        rightAfter = Date.now() - t0;
        break;
      }
      await sleep(50);
    }
    expect(failed).toBeUndefined();
    expect(got).toEqual(want);
    // Right while the trainer's load was still held.
    expect(rightAfter).toBeLessThan(HOLD_MS);
    for (const until = Date.now() + 30_000; !second && Date.now() < until;) await sleep(100);
    // Then the trainer runs, with the same model, and the answers stay.
    for (const until = Date.now() + 30_000; ; await sleep(100)) {
      if (second && trainer(second)) break;
      if (Date.now() > until) throw new Error("the trainer did not start");
    }
    expect(trainer(second!)!.status().models.implicit).toBe(point);
    expect(await ask(grpcPort)).toEqual(want);
  }, 180_000);
});
