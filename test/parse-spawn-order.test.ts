import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog } from "./helpers/events.js";
import { until } from "./helpers/harness.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { PARSE_IDLE_BACKLOG, parseSpawnGate } from "../bin/parse-process.js";
import type { Pipeline } from "../bin/pipeline/pipeline.js";
import { tierOf } from "../bin/pipeline/units.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";

/**
 * A restart with nothing for parse to catch up spawns the parse process once
 * the blend's sources (history, covisit, collaborative) run. Its own start (modules, its dedupe
 * memory: ~2 s of CPU at 1M events) took a core from their loads, which the first right answers
 * wait for: with a model of 1M users the restarted main thread waited 1.4-1.8 s for a CPU, 0.8 s
 * once parse came after (bench/restart-ab.ts, right answers 4.4-5.3 s -> 3.7-4.3 s).
 */
describe("a restart with PARSE_PROCESS=1", () => {
  let nats: TestNats | undefined;
  let app: App | undefined;
  let nc: NatsConnection | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await nc?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    app = undefined;
    await nats?.cleanup();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  const config = (dir: string) =>
    loadConfig({
      NATS_URL: nats!.url,
      DATA_DIR: dir,
      GRPC_PORT: "0",
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: "2",
      IDLE_TIMEOUT_MS: "0",
      LOG_LEVEL: "silent",
      PARSE_PROCESS: "1",
    });
  const sourceStatuses = (p: Pipeline) =>
    p
      .instanceIds()
      .filter((id) => ["history", "covisit", "collaborative"].includes(tierOf(id)))
      .map((id) => `${id} ${p.instance(id)?.actor.getStatus() ?? "absent"}`);

  it("spawns the parse process only once every source stage runs", async () => {
    nats = await setupNats();
    const dir = await mkdtemp(join(tmpdir(), "reco-parse-spawn-"));
    dirs.push(dir);
    app = await startApp(config(dir), pino({ level: "silent" }));
    nc = await connect({ servers: nats.url, noAsyncTraces: true });
    const events = generateLog({
      seed: 3,
      events: 3_000,
      users: 300,
      items: 120,
      categories: ["a", "b", "c"],
      start: Date.now() - 3_600_000,
      spanMs: 3_600_000,
      lateShare: 0,
      lateByMs: 0,
    });
    const pub = createJetStreamPublisher(nc, { window: 512 });
    await pub.publishMany(
      events.map((e) => ({
        subject: `events.${e.event_type}`,
        data: new TextEncoder().encode(JSON.stringify(e)),
      })),
    );
    await pub.close();
    const parse = app.parseProcess!;
    expect(await until(() => parse.position() >= events.length, 60_000)).toBe(true);
    // A stop snapshots every stage: the next start loads their state.
    await app.stop();
    app = undefined;

    let atServing: string[] = [];
    let atSpawn: string[] | undefined;
    let pipeline: Pipeline | undefined;
    // pino writes to this stream synchronously: the statuses are those of the spawn's moment.
    const lines = {
      write(line: string) {
        if (pipeline && atSpawn === undefined && line.includes('"parse process started"'))
          atSpawn = sourceStatuses(pipeline);
      },
    };
    app = await startApp(config(dir), pino({ level: "debug" }, lines), {
      onServing: (_backend, p) => {
        pipeline = p;
        atServing = sourceStatuses(p);
      },
    });
    // Serving runs first, the sources still load (they start after it), and parse comes last.
    // history/0, history/1, covisit/0, covisit/1, collaborative/0 and collaborative/1 (the
    // collaborative trainer loads with the rest: its models serve from their shelf).
    expect(atServing.length).toBe(6);
    expect(atServing.filter((s) => !s.endsWith(" running")).length).toBeGreaterThan(0);
    expect(atSpawn).toEqual(atServing.map((s) => s.replace(/ \w+$/, " running")));
    const again = app.parseProcess!;
    expect(await until(() => again.position() >= events.length, 60_000)).toBe(true);
  });
});

describe("when a start spawns the parse process (parseSpawnGate)", () => {
  const never = () => new Promise<void>(() => {});
  const settled = async (p: Promise<void>, ms: number) =>
    Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);

  it("waits for the sources when parse has next to nothing to read", async () => {
    let run!: () => void;
    const sources = new Promise<void>((r) => (run = r));
    const gate = parseSpawnGate(
      async () => PARSE_IDLE_BACKLOG,
      () => sources,
      60_000,
    );
    expect(await settled(gate, 100)).toBe(false);
    run();
    expect(await settled(gate, 1_000)).toBe(true);
  });

  it("does not wait with a backlog to catch up, or when the backlog cannot be told", async () => {
    const behind = parseSpawnGate(async () => PARSE_IDLE_BACKLOG + 1, never, 60_000);
    expect(await settled(behind, 1_000)).toBe(true);
    const unknown = parseSpawnGate(() => Promise.reject(new Error("no consumer")), never, 60_000);
    expect(await settled(unknown, 1_000)).toBe(true);
  });

  it("waits at most maxWaitMs for sources that never run", async () => {
    const gate = parseSpawnGate(async () => 0, never, 200);
    expect(await settled(gate, 50)).toBe(false);
    expect(await settled(gate, 2_000)).toBe(true);
  });
});
