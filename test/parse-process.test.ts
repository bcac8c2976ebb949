import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog, rng } from "./helpers/events.js";
import { reference, type RefEvent } from "./helpers/reference.js";
import { ConfigError, loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { poller, sleep, until } from "./helpers/harness.js";
import { gauges, stagesBehind } from "./helpers/positions.js";

/**
 * `reco start` with PARSE_PROCESS=1 runs parse in a child process (bin/parse-process.ts).
 * The child may die at any moment like any process: the main process restarts it, and parse's
 * snapshot and durable consumer make that exact. It must never outlive the main process.
 */

const root = resolve(import.meta.dirname, "..");
const H = 3_600_000;
const enc = new TextEncoder();

const eventually = poller({ ms: 60_000, everyMs: 200, keepOnError: true });

/** `name{labels} value` lines of /metrics whose labels include `labels`. */
async function metric(port: number, name: string, labels: Record<string, string> = {}) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  let found = false;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
    found = true;
  }
  return found ? total : undefined;
}

/** A process is gone once /proc no longer lists it or lists it as a zombie (not reaped yet). */
const gone = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
};

const waitFor = (pred: () => boolean, ms: number) => until(pred, ms, 50);

const asRef = (items: { itemId: string; score: number; source: number }[]) =>
  items.map((i) => [
    i.itemId,
    i.score.toFixed(9),
    i.source === 1 ? "PERSONALIZED" : "POPULAR_FALLBACK",
  ]);
const refItems = (ref: ReturnType<typeof reference>, u: string) =>
  ref.recommend(u, 10).map((i) => [i.itemId, i.score.toFixed(9), i.source]);

describe("parse in a process of its own (PARSE_PROCESS=1)", () => {
  let nats: TestNats | undefined;
  let app: App | undefined;
  let nc: NatsConnection | undefined;
  let client: RecoClient | undefined;
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    client?.close();
    client = undefined;
    await nc?.close().catch(() => undefined);
    await app?.stop().catch(() => undefined);
    app = undefined;
    for (const c of children.splice(0)) c.kill("SIGKILL");
    await nats?.cleanup();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  const config = (dir: string, extra: Record<string, string> = {}) =>
    loadConfig({
      NATS_URL: nats!.url,
      DATA_DIR: dir,
      GRPC_PORT: "0",
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: "4",
      SNAPSHOT_INTERVAL: "300",
      IDLE_TIMEOUT_MS: "0",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "silent",
      PARSE_PROCESS: "1",
      ...extra,
    });

  async function publish(part: { subject: string; data: Uint8Array }[]) {
    const pub = createJetStreamPublisher(nc!, { window: 512, timeoutMs: 30_000 });
    await pub.publishMany(part);
    await pub.close();
  }

  // 20k events, two kills and their restarts: 37 s alone at load 18, over 60 s in a full run
  // at load 21 (ci9a).
  // With PARSE_PROCESS_STAGES=ingest the child also runs the design path up to interest-ranking
  // (and popularity, trending, drift): each kill takes them down with parse.
  it.each(["parse", "ingest"])(
    "recovers a SIGKILLed parse process mid-stream (PARSE_PROCESS_STAGES=%s): every answer equals the reference, nothing counted twice",
    async (stages) => {
      nats = await setupNats();
      const dir = await mkdtemp(join(tmpdir(), "reco-parse-kill-"));
      dirs.push(dir);
      app = await startApp(
        config(dir, { PARSE_PROCESS_STAGES: stages }),
        pino({ level: "silent" }),
      );
      expect(app.pipeline.instance("parse/0")).toBeUndefined();
      expect(app.pipeline.instance("window/0") === undefined).toBe(stages === "ingest");
      nc = await connect({ servers: nats.url, noAsyncTraces: true });
      client = createRecoClient(`127.0.0.1:${app.grpcPort}`);

      // The log in publish order, with about 2% of events sent again a little later (no
      // Nats-Msg-Id, so they reach parse): across a kill, only parse's snapshot of seen ids can
      // tell them apart.
      const good = generateLog({
        seed: 17,
        events: 20_000,
        users: 400,
        items: 150,
        categories: ["a", "b", "c", "d", "e", "f"],
        start: Date.parse("2026-11-10T00:00:00Z"),
        spanMs: 8 * H,
        lateShare: 0.01,
        lateByMs: H,
      });
      const r = rng(5);
      const log: RefEvent[] = [];
      for (let k = 0; k < good.length; k++) {
        log.push(good[k]!);
        if (k > 200 && r() < 0.02) log.push(good[k - 1 - Math.floor(r() * 200)]!);
      }
      const messages = log.map((e) => ({
        subject: `events.${e.event_type}`,
        data: enc.encode(JSON.stringify(e)),
      }));
      const ref = reference(log);
      expect(ref.duplicates).toBeGreaterThan(100);

      const parse = app.parseProcess!;
      // Killed as soon as parse passes `seq` (it reports its position every 100 ms), with more of
      // the log still to process.
      const killAt = async (seq: number) => {
        expect(await waitFor(() => parse.position() >= seq, 60_000)).toBe(true);
        expect(parse.position()).toBeLessThan(messages.length);
        const pid = parse.pid()!;
        process.kill(pid, "SIGKILL");
        expect(await waitFor(() => gone(pid), 5000)).toBe(true);
        return pid;
      };
      // Half the log up front; the first kill while parse works through it, the second while the
      // other half is being published.
      const half = Math.floor(messages.length / 2);
      await publish(messages.slice(0, half));
      const first = await killAt(Math.floor(half / 3));
      // The other half in small steps, so that parse is still reading when it dies again; the
      // last 2,000 only after that kill, so there is always more to read when it dies (a parse
      // that kept up with the steps had read everything by the time the kill came).
      const tail = messages.length - 2000;
      const rest = (async () => {
        for (let k = half; k < tail; k += 500) {
          await publish(messages.slice(k, Math.min(k + 500, tail)));
          await sleep(30);
        }
      })();
      await eventually(
        async () => parse.pid(),
        (pid) => pid !== undefined && pid !== first,
      );
      await killAt(half + 2000);
      await rest;
      await publish(messages.slice(tail));
      const last = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state.last_seq;
      expect(last).toBe(messages.length);
      // The third parse process has read everything.
      expect(await waitFor(() => parse.position() >= last, 60_000)).toBe(true);

      const users = ref.users();
      for (const u of users) {
        const res = await eventually(
          () => client!.getRecommendations(u, 10),
          (v) => JSON.stringify(asRef(v.items)) === JSON.stringify(refItems(ref, u)),
        );
        expect(asRef(res.items), `recommendations of ${u}`).toEqual(refItems(ref, u));
        expect(res.topCategories.map((c) => [c.category, Number(c.interest)])).toEqual(
          ref.topCategories(u),
        );
      }
      // Parse's counts (kept in its snapshot) and the main process's view of the restarts, both
      // in the one /metrics of the main process.
      const port = app.metricsPort;
      const count = (name: string) => metric(port, "reco_stage_count", { stage: "parse", name });
      expect(await count("accepted")).toBe(ref.accepted);
      expect(await count("duplicate")).toBe(ref.duplicates);
      expect(await count("in")).toBe(log.length);
      expect(await metric(port, "reco_stage_position", { stage: "parse" })).toBe(last);
      expect(await metric(port, "reco_stage_restarts_total", { stage: "parse" })).toBeGreaterThan(
        1,
      );
      // Each stage's time on its process's loop, wherever it runs (the child's merged in): the
      // longest single message within the sum (summed over partitions here, both).
      const busy = await metric(port, "reco_stage_busy_seconds_total", { stage: "window" });
      const longest = await metric(port, "reco_stage_busy_longest_seconds", { stage: "window" });
      expect(busy).toBeGreaterThan(0);
      expect(longest).toBeGreaterThan(0);
      expect(longest).toBeLessThanOrEqual(busy!);
      // Its heap grows as the main process's does (HEAP_GROWING_PERCENT, default 100), not up
      // to V8's own 4x. Its heap is small here, so it may grow by HEAP_GROWING_MIN_MB (32)
      // instead: at least 100%, at most V8's own 4x.
      const growing = await metric(port, "reco_parse_heap_growing_percent");
      expect(growing).toBeGreaterThanOrEqual(100);
      expect(growing).toBeLessThanOrEqual(300);
      // And reports where its memory is (bench step 7 splits the child's RSS with it).
      const mem = (kind: string) => metric(port, "reco_parse_memory_bytes", { kind });
      const [held, used] = [await mem("heap_held"), await mem("heap_used")];
      expect(used).toBeGreaterThan(1 << 20);
      expect(held).toBeGreaterThanOrEqual(used!);
      expect(await mem("external")).toBeGreaterThan(0);
      // One exposition: every family once, the main process's start time kept.
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const types = text.split("\n").filter((l) => l.startsWith("# TYPE "));
      expect(types.length).toBe(new Set(types).size);
      expect(text).toMatch(/^process_start_time_seconds \d+/m);
    },
    120_000,
  );

  it("moves the snapshots of parse and its process's other stages when PARSE_PROCESS or PARSE_PROCESS_STAGES changes, so nothing is read again", async () => {
    nats = await setupNats();
    const dir = await mkdtemp(join(tmpdir(), "reco-parse-move-"));
    dirs.push(dir);
    nc = await connect({ servers: nats.url, noAsyncTraces: true });
    const log = generateLog({
      seed: 3,
      events: 3000,
      users: 100,
      items: 50,
      categories: ["a", "b", "c"],
      start: Date.parse("2026-11-10T00:00:00Z"),
      spanMs: 2 * H,
      lateShare: 0,
      lateByMs: 0,
    });
    const messages = log.map((e) => ({
      subject: `events.${e.event_type}`,
      data: enc.encode(JSON.stringify(e)),
    }));
    const parsedIn = (a: App) =>
      metric(a.metricsPort, "reco_stage_events_in_total", { stage: "parse" });
    const accepted = (a: App) =>
      metric(a.metricsPort, "reco_stage_count", { stage: "parse", name: "accepted" });
    // The stages that run beside parse in its process with PARSE_PROCESS_STAGES=ingest move
    // with it (units.ts): the watermark and drift stages read each parse hop record once.
    const besideParseIn = async (a: App) => [
      await metric(a.metricsPort, "reco_stage_events_in_total", { stage: "watermark" }),
      await metric(a.metricsPort, "reco_stage_events_in_total", { stage: "drift" }),
    ];

    const settled = async (a: App, parsed: number, acceptedAll: number) => {
      // The new events only, no replay (counts reach prom-client every 250 ms).
      await sleep(750);
      expect(await parsedIn(a)).toBe(parsed);
      expect(await accepted(a)).toBe(acceptedAll);
      expect(
        await eventually(
          () => besideParseIn(a),
          (n) => n.every((x) => x !== undefined && x >= parsed),
        ),
      ).toEqual([parsed, parsed]);
      // Every stage caught up before the app stops: the user path's snapshots are carried over
      // to the next start's plan only when each stage had processed what the one before wrote.
      const jsm = await nc!.jetstreamManager();
      expect(
        await eventually(
          async () => stagesBehind(jsm, await gauges(a.metricsPort, "reco_stage_position")),
          (n) => n === 0,
        ),
      ).toBe(0);
    };
    const listed = () => {
      const file = join(dir, "state-parse.stages.json");
      return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as string[]) : undefined;
    };

    // In the main process first.
    app = await startApp(config(dir, { PARSE_PROCESS: "0" }), pino({ level: "silent" }));
    await publish(messages.slice(0, 750));
    await eventually(
      async () => app!.pipeline.instance("parse/0")!.position(),
      (p) => p >= 750,
    );
    // Watermark and drift too: a hop record they had not read when the app stopped would be read
    // by the next app as a new one, not again (on a loaded machine they trail parse).
    await eventually(
      () => besideParseIn(app!),
      (n) => n.every((x) => x !== undefined && x >= 750),
    );
    await app.stop();

    // In a child with the stages no answer reads here (PARSE_PROCESS_STAGES=ingest): they start
    // where the main process stopped.
    app = await startApp(
      config(dir, { PARSE_PROCESS_STAGES: "ingest" }),
      pino({ level: "silent" }),
    );
    expect(existsSync(join(dir, "state-parse"))).toBe(true);
    expect(app.pipeline.instance("watermark/0")).toBeUndefined();
    expect(
      await eventually(
        async () => app!.parseProcess!.position(),
        (p) => p >= 750,
      ),
    ).toBe(750);
    await publish(messages.slice(750, 1500));
    await eventually(
      async () => app!.parseProcess!.position(),
      (p) => p >= 1500,
    );
    await settled(app, 750, 1500);
    // The user path's stages there run as one chain (CHAINING=on), its snapshot moved as one.
    expect(listed()).toContain("watermark+window+interest-ranking");
    await app.stop();

    // Parse alone in the child (the default): the others come back to the main process.
    app = await startApp(config(dir), pino({ level: "silent" }));
    expect(app.pipeline.instance("watermark/0")).toBeDefined();
    await publish(messages.slice(1500, 2250));
    await eventually(
      async () => app!.parseProcess!.position(),
      (p) => p >= 2250,
    );
    await settled(app, 750, 2250);
    expect(listed()).toEqual(["parse"]);
    await app.stop();

    // And back into the main process.
    app = await startApp(config(dir, { PARSE_PROCESS: "0" }), pino({ level: "silent" }));
    expect(existsSync(join(dir, "state-parse"))).toBe(false);
    expect(listed()).toBeUndefined();
    expect(app.pipeline.instance("parse/0")!.position()).toBe(2250);
    await publish(messages.slice(2250));
    await eventually(
      async () => app!.pipeline.instance("parse/0")!.position(),
      (p) => p >= 3000,
    );
    await settled(app, 750, 3000);
  });

  it("the parse process exits when the main process is SIGKILLed, and the next start runs parse again", async () => {
    nats = await setupNats();
    const dir = await mkdtemp(join(tmpdir(), "reco-parse-orphan-"));
    dirs.push(dir);
    const metricsPort = await freePort();
    const startReco = () => {
      // As `npx reco start` runs it: tsx registered in-process, so the child loads it by itself.
      const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
        cwd: root,
        env: {
          ...process.env,
          NATS_URL: nats!.url,
          DATA_DIR: dir,
          GRPC_PORT: "0",
          GRPC_HOST: "127.0.0.1",
          METRICS_PORT: String(metricsPort),
          PARTITIONS: "2",
          PARSE_PROCESS: "1",
          // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
          RANKER: "design",
          LOG_LEVEL: "info",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      children.push(child);
      let out = "";
      child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((res) => child.once("exit", (code) => res(code)));
      return { child, output: () => out, exited };
    };
    const parsePid = (out: string) =>
      Number(/"parsePid":(\d+),"msg":"parse process ready"/.exec(out)?.[1]);

    const first = startReco();
    expect(
      await waitFor(() => first.output().includes("reco-stream ready"), 60_000),
      first.output(),
    ).toBe(true);
    const orphan = parsePid(first.output());
    expect(orphan).toBeGreaterThan(0);
    expect(gone(orphan)).toBe(false);
    first.child.kill("SIGKILL");
    await first.exited;
    expect(await waitFor(() => gone(orphan), 5000)).toBe(true);

    // Its LevelDB lock is free: the next start's parse process opens the same directory.
    const second = startReco();
    expect(
      await waitFor(() => second.output().includes("reco-stream ready"), 60_000),
      second.output(),
    ).toBe(true);
    const next = parsePid(second.output());
    expect(next).not.toBe(orphan);
    expect(await metric(metricsPort, "reco_stage_position", { stage: "parse" })).toBe(0);
    // A graceful stop takes the parse process with it.
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
    expect(await waitFor(() => gone(next), 5000)).toBe(true);
  });
});

describe("PARSE_PROCESS", () => {
  it("is 0 or 1, and a bad value names the setting", () => {
    expect(loadConfig({ PARSE_PROCESS: "0" }).parseProcess).toBe(false);
    expect(loadConfig({ PARSE_PROCESS: "1" }).parseProcess).toBe(true);
    expect(loadConfig({}, { PARSE_PROCESS: "0" }).parseProcess).toBe(false);
    expect(() => loadConfig({ PARSE_PROCESS: "yes" })).toThrow(ConfigError);
    expect(() => loadConfig({ PARSE_PROCESS: "yes" })).toThrow(
      'PARSE_PROCESS="yes" is not valid: expected one of 0, 1',
    );
  });
});
