import { afterAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import { setupNats } from "./helpers/nats.js";
import { gauges } from "./helpers/positions.js";
import { exited, killGroup, spawnReco, type AppProcess } from "./helpers/app-process.js";
import {
  collect,
  differences,
  lateMessages,
  waitQuiescent,
  type Results,
} from "./helpers/engine-results.js";
import { logB } from "./helpers/reference-scenario.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { replayFile } from "../bin/replay/run.js";
import { sleep } from "./helpers/harness.js";

/**
 * CHAINING=on (each partition's user path as one chain, records passed in memory) gives what
 * CHAINING=off (every stage behind its own JetStream subject) gives, on the same log: every
 * user's recommendations and top categories (with the watermark they reflect), the popularity
 * bucket, trending finals, the counts kept in the snapshots (late, dead letters, duplicates)
 * and reco.late, message for message. The chained runs are SIGKILLed (the whole process group)
 * halfway through the log and restarted on the same DATA_DIR: a chain restores all its stages
 * from its one snapshot.
 *
 * Logs: the reference scenario's (late and very late events on every path, duplicates) with a
 * few malformed events for the dead letters, and the first parts of the REES46 and MovieLens
 * logs.
 */

const root = resolve(import.meta.dirname, "..");
const REES46 = resolve(root, "../shared/data/rees46/2019-Oct-head.csv");
const REES46_EVENTS = 8000;
const MOVIELENS = resolve(root, "../shared/data/ml-latest-small");
const MOVIELENS_RATINGS = 6000;

/** The users (CSV column `column`) of the first `rows` rows of a shared log, sorted. */
function usersOfHead(file: string, rows: number, column: number): string[] {
  if (!existsSync(file))
    throw new Error(`${file} is missing: this test replays ../shared/data (see its README)`);
  const lines = readFileSync(file, "utf8")
    .trim()
    .split(/\r?\n/)
    .slice(1, rows + 1);
  return [...new Set(lines.map((l) => l.split(",")[column]!))].sort();
}

interface Run extends Results {
  late: string[];
  /** Stages with a position: which instances ran. */
  stages: string[];
  /** Input positions the chains restored after the kill (0: no snapshot, nothing to show). */
  restored: number;
}

/** Publishes `payloads` (JSON events or malformed bytes) as events.<type>, in order. */
async function publish(nc: NatsConnection, payloads: { type: string; data: string }[]) {
  const pub = createJetStreamPublisher(nc, { window: 256, timeoutMs: 30_000 });
  const enc = new TextEncoder();
  await pub.publishMany(
    payloads.map((p) => ({ subject: `events.${p.type}`, data: enc.encode(p.data) })),
  );
  await pub.close();
}

const scenarioPayloads = [
  ...logB.map((e) => ({ type: e.event_type, data: JSON.stringify(e) })),
  // Dead letters: not JSON, and an event without a user.
  { type: "view", data: "{not json" },
  { type: "view", data: JSON.stringify({ ...logB[0]!, event_id: "no-user", user_id: "" }) },
];
const scenarioUsers = [
  ...new Set([...logB.map((e) => String(e.user_id)), "never-seen-user"]),
].sort();

describe("CHAINING=on against CHAINING=off", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  /**
   * One run on a fresh server and DATA_DIR: `first` sends part of the log, then (with `kill`)
   * the app's process group is SIGKILLed and a new app starts on the same DATA_DIR, and `rest`
   * sends the remainder; the results once it has caught up.
   */
  async function run(o: {
    chaining: "on" | "off";
    kill: boolean;
    /**
     * Instead of a kill: once the first part is processed, a graceful stop (SIGTERM) and a start
     * in this mode on the same DATA_DIR.
     */
    switchTo?: "on" | "off";
    users: string[];
    /** Settings beside the test's own (PRESET). */
    env?: Record<string, string>;
    first: (nc: NatsConnection) => Promise<unknown>;
    rest: (nc: NatsConnection) => Promise<unknown>;
  }): Promise<Run> {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-chaining-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const nc = await connect({
      servers: nats.url,
      noAsyncTraces: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    cleanups.push(() => nc.close());
    const env = {
      NATS_URL: nats.url,
      DATA_DIR: dir,
      CHAINING: o.chaining,
      PARTITIONS: "3",
      // The design ranking (DESIGN §3.4–3.6): its answers are the user path's.
      RANKER: "design",
      // Idle markers follow wall time; the compared runs must not depend on pauses.
      IDLE_TIMEOUT_MS: "0",
      TRENDING_TRIGGER: "100",
      SNAPSHOT_INTERVAL: "300",
      LOG_LEVEL: "warn",
      ...o.env,
    };
    const start = (chaining = o.chaining) =>
      spawnReco({
        env: { ...env, CHAINING: chaining },
        detached: true,
        ready: async (app) =>
          (await gauges(app.metricsPort, "reco_stage_position")).some(
            (g) => g.labels.stage === "parse",
          ),
        timeoutMs: 90_000,
        pollMs: 100,
      });
    let app: AppProcess = await start();
    cleanups.push(() => killGroup(app));
    await o.first(nc);
    let restored = 0;
    if (o.kill) {
      // Some of what was sent is processed and snapshotted, some not yet: kill once a chain has
      // written a snapshot with state in it (a loaded machine may take longer than usual).
      const snapshotted = async () =>
        (await gauges(app.metricsPort, "reco_stage_snapshot_keys_total")).some(
          (g) => g.labels.stage!.includes("+") && g.value > 0,
        );
      for (const end = Date.now() + 60_000; !(await snapshotted()) && Date.now() < end;)
        await sleep(100);
      await killGroup(app);
      app = await start();
      for (const g of await gauges(app.metricsPort, "reco_stage_restored_position"))
        if (g.labels.stage!.includes("+")) restored += g.value;
    }
    if (o.switchTo !== undefined) {
      await waitQuiescent(nc, app);
      process.kill(-app.child.pid!, "SIGTERM");
      await exited(app.child);
      app = await start(o.switchTo);
      // What the other mode's instances had snapshotted, carried over to this mode's.
      for (const g of await gauges(app.metricsPort, "reco_stage_restored_position"))
        if (/^(watermark|window|interest-ranking|popularity-join)/.test(g.labels.stage!))
          restored += g.value;
    }
    await o.rest(nc);
    await waitQuiescent(nc, app);
    const got = await collect(nc, app, o.users);
    const stages = [
      ...new Set((await gauges(app.metricsPort, "reco_stage_position")).map((g) => g.labels.stage)),
    ].sort() as string[];
    const late = await lateMessages(nc);
    await killGroup(app);
    return { ...got, late, stages, restored };
  }

  const expectSame = (off: Run, on: Run) => {
    // The chain ran, and in its place: no instance of its stages of their own.
    expect(on.stages).toContain("watermark+window+interest-ranking");
    expect(on.stages).toContain("popularity-join");
    expect(on.stages).not.toContain("window");
    expect(off.stages).toContain("window");
    expect(on.restored).toBeGreaterThan(0);
    expect(differences(off.answers, on.answers)).toEqual({ count: 0, first: [] });
    expect(differences(off.popularity, on.popularity)).toEqual({ count: 0, first: [] });
    expect(differences(off.trending, on.trending)).toEqual({ count: 0, first: [] });
    expect(differences(off.counts, on.counts)).toEqual({ count: 0, first: [] });
    expect(on.late).toEqual(off.late);
  };

  /** The reference scenario with CHAINING=off, no kill: what the scenario's other runs are compared with. */
  let scenarioOff: Run | undefined;
  const half = Math.floor(scenarioPayloads.length / 2);
  const scenarioRun = (chaining: "on" | "off", kill: boolean, switchTo?: "on" | "off") =>
    run({
      chaining,
      kill,
      ...(switchTo !== undefined ? { switchTo } : {}),
      users: scenarioUsers,
      first: (nc) => publish(nc, scenarioPayloads.slice(0, half)),
      rest: (nc) => publish(nc, scenarioPayloads.slice(half)),
    });
  const scenarioBaseline = async () => (scenarioOff ??= await scenarioRun("off", false));

  it("gives the same answers, tables, counts and late events on the reference scenario, killed halfway", async () => {
    const off = await scenarioBaseline();
    // What is compared holds something on every path.
    expect(off.counts["watermark:late"]).toBeGreaterThan(50);
    expect(off.counts["parse:dead_letter"]).toBe(2);
    expect(off.counts["parse:duplicate"]).toBeGreaterThan(50);
    expect(Object.keys(off.trending).length).toBeGreaterThan(20);
    expect(Object.keys(off.answers).length).toBe(scenarioUsers.length);
    expectSame(off, await scenarioRun("on", true));
  }, 300_000);

  it("gives the same answers, tables and counts on the REES46 log, killed halfway", async () => {
    const users = usersOfHead(REES46, REES46_EVENTS, 7);
    const runOf = (chaining: "on" | "off", kill: boolean) =>
      run({
        chaining,
        kill,
        users,
        first: (nc) => replayFile({ file: REES46, nc, rate: 5000, limit: REES46_EVENTS / 2 }),
        // The whole slice again: what was sent before is a duplicate by event id.
        rest: (nc) => replayFile({ file: REES46, nc, rate: 5000, limit: REES46_EVENTS }),
      });
    const off = await runOf("off", false);
    expect(off.counts["parse:accepted"]).toBeGreaterThan(REES46_EVENTS * 0.9);
    expect(Object.keys(off.popularity).length).toBeGreaterThan(50);
    expectSame(off, await runOf("on", true));
  }, 300_000);
  it("gives the same answers, tables and counts on the MovieLens log, killed halfway", async () => {
    const ratings = join(MOVIELENS, "ratings.csv");
    const moviesFile = join(MOVIELENS, "movies.csv");
    const users = usersOfHead(ratings, MOVIELENS_RATINGS, 0);
    // The file is in user order: each replay sends its rows in event-time order, so the second
    // one's new rows fall between the first one's in event time (late on every path).
    const replay = (nc: NatsConnection, limit: number) =>
      replayFile({ file: ratings, nc, rate: 5000, limit, moviesFile });
    const runOf = (chaining: "on" | "off", kill: boolean) =>
      run({
        chaining,
        kill,
        users,
        env: { PRESET: "movies" },
        first: (nc) => replay(nc, MOVIELENS_RATINGS / 2),
        rest: (nc) => replay(nc, MOVIELENS_RATINGS),
      });
    const off = await runOf("off", false);
    expect(off.counts["parse:accepted"]).toBe(MOVIELENS_RATINGS);
    expect(off.counts["watermark:late"]).toBeGreaterThan(0);
    expect(Object.keys(off.popularity).length).toBeGreaterThan(50);
    expect(Object.keys(off.trending).length).toBeGreaterThan(20);
    expectSame(off, await runOf("on", true));
  }, 300_000);
  it("carries the user path's state over when CHAINING is switched either way: nothing read again, the same answers", async () => {
    const off = await scenarioBaseline();
    // Off, then on: the four stages' snapshots joined into the chain's.
    const on = await scenarioRun("off", false, "on");
    expect(on.stages).toContain("watermark+window+interest-ranking");
    expect(on.stages).toContain("popularity-join");
    expect(on.stages).not.toContain("window");
    expect(on.restored).toBeGreaterThan(0);
    expect(on.counts["watermark:late"]).toBe(off.counts["watermark:late"]);
    expect(differences(off.answers, on.answers)).toEqual({ count: 0, first: [] });
    expect(differences(off.counts, on.counts)).toEqual({ count: 0, first: [] });
    expect(on.late).toEqual(off.late);
    // On, then off: the chain's snapshot cut into one per stage.
    const back = await scenarioRun("on", false, "off");
    expect(back.stages).toContain("window");
    expect(back.restored).toBeGreaterThan(0);
    expect(differences(off.answers, back.answers)).toEqual({ count: 0, first: [] });
    expect(differences(off.counts, back.counts)).toEqual({ count: 0, first: [] });
    expect(back.late).toEqual(off.late);
  }, 300_000);
});
