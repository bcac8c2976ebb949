import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "nats";
import { setupNats } from "./helpers/nats.js";
import { gauges } from "./helpers/positions.js";
import { collect, differences, waitQuiescent, type Results } from "./helpers/engine-results.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { replayFile } from "../bin/replay/run.js";
import { sleep } from "./helpers/harness.js";
import { killGroup, spawnReco, type AppProcess } from "./helpers/app-process.js";

/**
 * A SIGKILL of the whole app (process group: main and parse processes) late in
 * a paced replay of the REES46 log, then a restart, gives every answer and every table of an
 * uninterrupted run: each user's recommendations (items, scores, sources, top categories, the
 * watermark), the whole popularity bucket (rows and heartbeat), trending finals and heartbeats,
 * and the counts kept in the snapshots.
 *
 * Variants: the private nats-server restarting with the app (the next start stops the one left
 * behind, which dies at once: its stderr pipe went with the app) or an external one that
 * survives; the publisher pausing around the kill or going on; idle markers off
 * (IDLE_TIMEOUT_MS=0) or on. The one with stale snapshots (long SNAPSHOT_INTERVAL: the restart replays
 * everything) lost purchases from the popularity table before the fix (KV upserts replayed
 * after the server's restart were dropped as duplicates while older values were stored).
 */

const root = resolve(import.meta.dirname, "..");
const LOG = resolve(root, "../shared/data/rees46/2019-Oct-head.csv");
const RATE = 5000;

type App = AppProcess;

/** `reco start` in a process group of its own, as a shell job: a SIGKILL of the group kills all. */
function startApp(env: Record<string, string>): Promise<App> {
  return spawnReco({
    // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
    env: { RANKER: "design", LOG_LEVEL: "warn", ...env },
    detached: true,
    // Ready, and parse (in its own process) runs: a restarted app is processing again.
    ready: async (app) =>
      (await gauges(app.metricsPort, "reco_stage_position")).some(
        (g) => g.labels.stage === "parse",
      ),
    timeoutMs: 90_000,
    pollMs: 100,
  });
}

describe("SIGKILL late in a paced replay (REES46 head)", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  let users: string[] = [];
  let events = 0;
  let expected: Results;

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  beforeAll(async () => {
    if (!existsSync(LOG))
      throw new Error(`${LOG} is missing: this test replays ../shared/data (see its README)`);
    const rows = readFileSync(LOG, "utf8").trim().split(/\r?\n/).slice(1);
    users = [...new Set(rows.map((l) => l.split(",")[7]!))].sort();
    // The uninterrupted run, paced like the others.
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-late-kill-ref-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const nc = await connect({ servers: nats.url, noAsyncTraces: true });
    cleanups.push(() => nc.close());
    const app = await startApp({ NATS_URL: nats.url, DATA_DIR: dir, IDLE_TIMEOUT_MS: "0" });
    cleanups.push(() => killGroup(app));
    const sent = await replayFile({ file: LOG, nc, rate: RATE });
    events = sent.sent - sent.duplicates;
    await waitQuiescent(nc, app);
    expected = await collect(nc, app, users);
    await killGroup(app);
    // What is compared holds something.
    expect(Object.keys(expected.popularity).length).toBeGreaterThan(100);
    expect(expected.counts["parse:accepted"]).toBeGreaterThan(17_000);
  }, 240_000);

  /**
   * One run: the app starts, the log is replayed at RATE, the app's process group is SIGKILLed
   * once 99.9% of the log is in EVENTS, and a new app starts on the same DATA_DIR.
   */
  async function killedRun(o: {
    privateNats: boolean;
    publisher: "pauses" | "goes on";
    env: Record<string, string>;
  }): Promise<Results> {
    const dir = await mkdtemp(join(tmpdir(), "reco-late-kill-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    let url: string;
    let env: Record<string, string>;
    if (o.privateNats) {
      const port = await freePort();
      url = `nats://127.0.0.1:${port}`;
      env = { NATS_PORT: String(port), DATA_DIR: dir, ...o.env };
      // The private server left behind by the last app, if any (by its pid file).
      cleanups.push(async () => {
        const pid = Number(readFileSync(join(dir, "nats", "nats-server.pid"), "utf8").trim());
        if (pid > 0) process.kill(pid, "SIGKILL");
      });
    } else {
      const nats = await setupNats();
      cleanups.push(() => nats.cleanup());
      url = nats.url;
      env = { NATS_URL: url, DATA_DIR: dir, ...o.env };
    }
    let app = await startApp(env);
    cleanups.push(() => killGroup(app));
    // The private server takes the engine's credentials, made at the first start.
    const auth = o.privateNats
      ? (
          JSON.parse(readFileSync(join(dir, "nats-credentials.json"), "utf8")) as {
            engine: { user: string; pass: string };
          }
        ).engine
      : {};
    const nc = await connect({
      ...auth,
      servers: url,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    cleanups.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    const target = Math.floor(events * 0.999);
    const whole = () => replayFile({ file: LOG, nc, rate: RATE });
    // Pausing: the publisher stops at 99.9% and sends the whole log again after the restart
    // (what it had sent is a duplicate by event id); going on: it never stops.
    const first =
      o.publisher === "pauses" ? replayFile({ file: LOG, nc, rate: RATE, limit: target }) : whole();
    if (o.publisher === "pauses") await first;
    else
      for (;;) {
        const last = await jsm.streams.info("EVENTS").then((i) => i.state.last_seq);
        if (last >= target) break;
        await sleep(2);
      }
    await killGroup(app);
    app = await startApp(env);
    if (o.publisher === "pauses") await whole();
    else await first;
    await waitQuiescent(nc, app);
    const got = await collect(nc, app, users);
    await killGroup(app);
    return got;
  }

  const expectSame = (got: Results) => {
    expect(differences(expected.popularity, got.popularity)).toEqual({ count: 0, first: [] });
    expect(differences(expected.trending, got.trending)).toEqual({ count: 0, first: [] });
    expect(differences(expected.counts, got.counts)).toEqual({ count: 0, first: [] });
    expect(differences(expected.answers, got.answers)).toEqual({ count: 0, first: [] });
  };

  it("the private nats-server restarting with the app, the publisher pausing, IDLE_TIMEOUT_MS=0, stale snapshots", async () => {
    expectSame(
      await killedRun({
        privateNats: true,
        publisher: "pauses",
        // Nothing snapshotted before the kill: the restart replays the whole log.
        env: { IDLE_TIMEOUT_MS: "0", SNAPSHOT_INTERVAL: "40000", SNAPSHOT_EVERY: "1000000" },
      }),
    );
  }, 300_000);

  it("an external nats-server, the publisher going on, idle markers on and the default snapshots", async () => {
    // Idle markers on (parse probes, signs and reads them back), with a timeout longer than the
    // run: a marker could come only that long after the last event, and the results are
    // compared before, so they must equal the run without markers. At the default (30 s) a
    // loaded machine (load average 11) once took longer than that to collect the results, and
    // the marker moved the popularity heartbeat on by 30 s.
    expectSame(
      await killedRun({
        privateNats: false,
        publisher: "goes on",
        env: { IDLE_TIMEOUT_MS: "180000" },
      }),
    );
  }, 300_000);

  it("the private nats-server restarting with the app, the publisher going on, IDLE_TIMEOUT_MS=0", async () => {
    expectSame(
      await killedRun({ privateNats: true, publisher: "goes on", env: { IDLE_TIMEOUT_MS: "0" } }),
    );
  }, 300_000);
});
