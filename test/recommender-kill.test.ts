import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type JetStreamManager } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { gauges, stagesBehind } from "./helpers/positions.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { replayFile } from "../bin/replay/run.js";
import { sleep } from "./helpers/harness.js";
import { killGroup, spawnReco, type AppProcess } from "./helpers/app-process.js";

/**
 * The candidate source stages (history per partition, covisit, collaborative)
 * are exact under SIGKILL. A slice of the real REES46 log
 * is replayed into `reco start` (RANKER=blend, its default) once without a kill, and once with
 * the app's process group SIGKILLed in the middle of the replay and started again on the same
 * DATA_DIR while the replay goes on: once both have caught up and trained, every sampled user's
 * blend (items, sources, explanations, scores) and the watermark are the same. Idle markers are
 * off (they move event time with the wall clock); the model is trained when event time enters
 * a new RETRAIN_INTERVAL_MS, with trainings in flight at the kill.
 */
const root = resolve(import.meta.dirname, "..");
const LOG = resolve(root, "../shared/data/rees46/2019-Oct-head.csv");
const ROWS = 3000;

type App = AppProcess;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function startApp(natsUrl: string, dataDir: string): Promise<App> {
  return spawnReco({
    env: {
      NATS_URL: natsUrl,
      DATA_DIR: dataDir,
      WEB_PORT: "0",
      PARTITIONS: "3",
      IDLE_TIMEOUT_MS: "0",
      RETRAIN_INTERVAL_MS: "600000",
      SNAPSHOT_INTERVAL: "300",
      LOG_LEVEL: "warn",
    },
    detached: true,
    spawned: (app) => cleanups.push(() => killGroup(app)),
    timeoutMs: 90_000,
    pollMs: 100,
  });
}

async function metric(app: App, name: string, ...labels: string[]): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/**
 * Parse accepted `events`, the source stages fed them all (collaborative and covisit every
 * record, each history its partition's last hop), the newest point trained, nothing training.
 */
async function caughtUp(app: App, events: number, jsm: JetStreamManager) {
  let seen = "";
  for (const until = Date.now() + 120_000; Date.now() < until; await sleep(250)) {
    const fed = await metric(app, "reco_recommender", 'name="events"');
    const covisit = await metric(app, "reco_recommender", 'name="covisit_events"');
    const point = await metric(app, "reco_recommender", 'name="train_point"');
    const model = await metric(app, "reco_recommender", 'name="model_point"');
    const training = await metric(app, "reco_recommender", 'name="training"');
    const positions = (await gauges(app.metricsPort, "reco_stage_position")).filter(
      (g) => g.labels.stage === "history",
    );
    const history = positions.length === 3 ? await stagesBehind(jsm, positions) : -1;
    if (
      fed === events &&
      covisit === events &&
      history === 0 &&
      point! > 0 &&
      model === point &&
      training === 0
    )
      return;
    seen = JSON.stringify({ events, fed, covisit, history, point, model, training });
  }
  throw new Error(`the recommender did not catch up: ${seen}\n${app.output()}`);
}

async function answers(app: App, users: string[]) {
  const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  try {
    const out: Record<string, unknown> = {};
    for (const u of users) {
      const r = await client.getRecommendations(u, 10);
      out[u] = {
        wm: Number(r.watermark?.seconds ?? 0n),
        items: r.items.map((i) => [i.itemId, i.source, i.explanation, i.score]),
      };
    }
    return out;
  } finally {
    client.close();
  }
}

async function run(file: string, users: string[], kill: boolean) {
  const nats: TestNats = await setupNats();
  cleanups.push(() => nats.cleanup());
  const dir = await mkdtemp(join(tmpdir(), "reco-reckill-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  let app = await startApp(nats.url, join(dir, "data"));
  const nc = await connect({ servers: nats.url });
  cleanups.push(() => nc.close());
  const replay = replayFile({ file, nc, ...(kill ? { rate: 1500 } : {}) });
  let kills = 0;
  if (kill) {
    // Mid-replay: snapshots (every 300 ms) taken, trainings done and maybe one in flight.
    for (let k = 0; k < 2; k++) {
      await sleep(700);
      await killGroup(app);
      kills++;
      app = await startApp(nats.url, join(dir, "data"));
    }
  }
  const summary = await replay;
  expect(summary.rejected).toBe(0);
  // The slice has no repeated row: every row sent is one event.
  await caughtUp(app, summary.sent, await nc.jetstreamManager());
  const result = await answers(app, users);
  await killGroup(app);
  return { result, kills };
}

describe("the candidate source stages under SIGKILL", () => {
  it("gives the blend of an uninterrupted run after SIGKILLs mid-replay", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-reckill-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, ROWS + 1);
    const file = join(dir, "slice.csv");
    await writeFile(file, lines.join("\n") + "\n");
    const users = [...new Set(lines.slice(1).map((l) => l.split(",")[7]!))]
      .sort()
      .filter((_, x) => x % 25 === 0);
    expect(users.length).toBeGreaterThan(20);
    const a = await run(file, users, false);
    const b = await run(file, users, true);
    expect(b.kills).toBe(2);
    const sources = new Set(
      Object.values(a.result).flatMap((r) =>
        (r as { items: [string, number][] }).items.map((i) => i[1]),
      ),
    );
    expect(sources.size).toBeGreaterThan(2); // the blend, with COLLABORATIVE among its sources
    expect(b.result).toEqual(a.result);
  }, 400_000);
});
