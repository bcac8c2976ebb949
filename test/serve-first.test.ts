import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { pino } from "pino";
import { setupNats } from "./helpers/nats.js";
import { generateLog } from "./helpers/events.js";
import { reference } from "./helpers/reference.js";
import { loadConfig } from "../bin/config.js";
import { startApp } from "../bin/app.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { sleep } from "./helpers/harness.js";

const H = 3_600_000;
const enc = new TextEncoder();

describe("a restarted process", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    delete process.env.RECO_TEST_SLOW_START;
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  // Recovery (DESIGN §7: serving again within 5 s): with 1M users, loading every stage's snapshot
  // took 13 s, and gRPC was bound only after the last one. Serving needs popularity-join's
  // profiles and the popularity table only, so those start first and gRPC answers from the
  // snapshot while the other stages load.
  it("answers from its snapshot while other stages are still loading", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-serve-first-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const grpcPort = await freePort();
    const cfg = loadConfig({
      NATS_URL: nats.url,
      DATA_DIR: dir,
      GRPC_PORT: String(grpcPort),
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: "2",
      IDLE_TIMEOUT_MS: "0",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "silent",
    });
    const log = generateLog({
      seed: 5,
      events: 300,
      users: 10,
      items: 20,
      categories: ["a", "b", "c"],
      start: Date.parse("2026-11-10T00:00:00Z"),
      spanMs: 2 * H,
      lateShare: 0,
      lateByMs: 0,
    }).filter((e) => typeof e.event_id === "string");
    const ref = reference(log);
    const users = [...new Set(log.map((e) => String(e.user_id)))].sort();
    const user = users.find((u) => ref.recommend(u, 10).length > 0);
    expect(user).toBeDefined();
    const want = JSON.stringify(ref.recommend(user!, 10).map((i) => i.itemId));

    const first = await startApp(cfg, pino({ level: "silent" }));
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const pub = createJetStreamPublisher(nc);
    await pub.publishMany(
      log.map((e) => ({
        subject: `events.${e.event_type}`,
        data: enc.encode(JSON.stringify(e)),
        opts: { msgId: String(e.event_id) },
      })),
    );
    await pub.close();
    const ask = async () => {
      const client = createRecoClient(`127.0.0.1:${grpcPort}`, {
        channelOptions: { "grpc.use_local_subchannel_pool": 1 },
      });
      try {
        const r = await client.getRecommendations(user!, 10, { deadlineMs: 1000 });
        return JSON.stringify(r.items.map((i) => i.itemId));
      } finally {
        client.close();
      }
    };
    const end = Date.now() + 30_000;
    let before = "";
    while (before !== want && Date.now() < end) {
      before = await ask().catch(() => "");
      if (before !== want) await sleep(200);
    }
    expect(before).toBe(want);
    await first.stop(); // drains: every stage snapshots

    // The second start: window/0 takes 4 s to start, as a large snapshot would.
    process.env.RECO_TEST_SLOW_START = "window/0:4000";
    let started = false;
    let failed: unknown;
    const t0 = Date.now();
    const second = startApp(cfg, pino({ level: "silent" }));
    second.then(
      (app) => {
        started = true;
        cleanups.push(() => app.stop());
      },
      (err: unknown) => {
        failed = err;
      },
    );
    let answer = "";
    let startedAtAnswer = true;
    while (Date.now() - t0 < 15_000) {
      answer = await ask().catch(() => "");
      if (answer !== "") {
        startedAtAnswer = started;
        break;
      }
      await sleep(50);
    }
    expect(failed).toBeUndefined();
    expect(answer).toBe(want);
    // Answered while window/0 was still held: before the process had started every stage.
    expect(startedAtAnswer).toBe(false);
    expect(Date.now() - t0).toBeLessThan(4000);
    const app = await second;
    expect(app.pipeline.instance("window/0")?.actor.getStatus()).toBe("running");
    expect(await ask()).toBe(want);
  }, 90_000);
});
