import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AckPolicy, connect, DeliverPolicy } from "nats";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { EVENTS_STREAM, ensureEventsStream } from "../connectors/nats/streams.js";
import { ensureTopology } from "../connectors/nats/topology.js";
import { awaitEngine } from "../bin/replay/engine-report.js";

/*
 * `reco replay` against a server that dies or stalls under it: a deadline per publish, one line
 * naming the cause, a non-zero exit, and a re-run that resumes without storing anything twice.
 */

const root = resolve(import.meta.dirname, "..");
const RATINGS = resolve(root, "..", "shared", "data", "ml-latest-small", "ratings.csv");
const ROWS = 20_000;

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function server(storeDir?: string, port = 0): Promise<EmbeddedNats & { storeDir: string }> {
  const dir = storeDir ?? (await mkdtemp(join(tmpdir(), "reco-replay-faults-")));
  if (!storeDir) cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const s = await startEmbeddedNats({ port, storeDir: dir });
  cleanups.push(() => s.stop());
  return Object.assign(s, { storeDir: dir });
}

async function slice(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "reco-replay-faults-log-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "ratings.csv");
  const lines = readFileSync(RATINGS, "utf8")
    .split("\n")
    .slice(0, ROWS + 1);
  await writeFile(file, `${lines.join("\n")}\n`);
  return file;
}

/** `reco replay` as a user runs it; resolves with its exit code, output and seconds taken. */
function replay(args: string[]) {
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "replay", ...args], {
    cwd: root,
    env: { ...process.env, NATS_URL: "" },
  });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const t0 = Date.now();
  cleanups.push(async () => child.kill("SIGKILL"));
  return new Promise<{ code: number | null; out: string; err: string; secs: number }>((done) =>
    child.on("exit", (code) => done({ code, out, err, secs: (Date.now() - t0) / 1000 })),
  );
}

async function storedEvents(url: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    return (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state.messages;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

async function waitFor(check: () => Promise<boolean>, ms: number) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (await check()) return;
  throw new Error("condition not met in time");
}

/** The lines a failed replay printed on stderr that are not npm's or node's own. */
const ownLines = (err: string) =>
  err
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.startsWith("npm warn"))
    .filter((l) => !/^\s+at /.test(l));

describe("reco replay when its server fails", () => {
  it("ends within its publish deadline when the server is killed, and a re-run resumes storing each event once", async () => {
    const file = await slice();
    const nats = await server();
    const { port } = nats;
    const url = nats.url;
    const first = replay([file, "--nats-url", url, "--rate", "2000", "--wait", "0"]);
    await waitFor(async () => (await storedEvents(url)) >= 3000, 60_000);
    await nats.kill();
    const r = await first;
    expect(r.code).toBe(1);
    // The publisher's deadline (5 s, three attempts) and the connection's: well under a minute.
    expect(r.secs).toBeLessThan(45);
    const lines = ownLines(r.err);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^reco replay: NATS at nats:\/\/127\.0\.0\.1:\d+ stopped acknowledging events .*; \d+ events were stored\. Re-run the same command to resume/,
    );
    expect(r.err).not.toMatch(/TIMEOUT|Error:/);

    // The same store on the same port, and the same command again.
    await server(nats.storeDir, port);
    const stored = await storedEvents(url);
    expect(stored).toBeGreaterThanOrEqual(3000);
    expect(stored).toBeLessThan(ROWS);
    const again = await replay([file, "--nats-url", url, "--wait", "0"]);
    expect({ code: again.code, err: ownLines(again.err) }).toEqual({ code: 0, err: [] });
    expect(await storedEvents(url)).toBe(ROWS);
    const m = /\((\d+) already in the stream\)/.exec(again.out);
    expect(Number(m?.[1])).toBeGreaterThanOrEqual(stored);
  }, 180_000);

  it("ends with one line naming the stall when the server stops answering (SIGSTOP)", async () => {
    const file = await slice();
    const nats = await server();
    const url = nats.url;
    const run = replay([file, "--nats-url", url, "--rate", "2000", "--wait", "0"]);
    await waitFor(async () => (await storedEvents(url)) >= 2000, 60_000);
    process.kill(nats.pid, "SIGSTOP");
    cleanups.push(async () => process.kill(nats.pid, "SIGCONT"));
    const r = await run;
    process.kill(nats.pid, "SIGCONT");
    expect(r.code).toBe(1);
    expect(r.secs).toBeLessThan(60);
    const lines = ownLines(r.err);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/stopped acknowledging events .*stalled/);
  }, 180_000);

  /**
   * A server holding `n` replayed events and the durable consumer of an engine's parse that has
   * read none of them yet; the pipeline's streams are there.
   */
  async function replayed(n: number) {
    const nats = await server();
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const jsm = await nc.jetstreamManager();
    await ensureEventsStream(jsm);
    await ensureTopology(nc, jsm);
    const js = nc.jetstream();
    for (let i = 0; i < n; i++) await js.publish("events.view", "{}");
    await jsm.consumers.add(EVENTS_STREAM, {
      durable_name: "parse",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
    });
    return { nc, js };
  }
  const NO_MARKS = { late: 0, dlq: 0, duplicates: undefined, metricsUrl: undefined };

  it("stops waiting for an engine that stopped reading, and says so", async () => {
    // The consumer of an engine that died before reading anything.
    const { nc } = await replayed(50);
    const t0 = Date.now();
    const report = await awaitEngine(nc, NO_MARKS, {
      lastEventSeq: 50,
      timeoutMs: 120_000,
      stallMs: 2_000,
      pollMs: 100,
    });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(report.caughtUp).toBe(false);
    expect(report.stopped).toBe(true);
    expect(report.note).toMatch(/^the engine stopped reading events \(at 0 of 50 for 2 s\)/);
  }, 60_000);

  it("takes an engine that read every replayed event as caught up, though events sent after them wait", async () => {
    const { nc, js } = await replayed(50);
    // The engine reads the 50 replayed events; another publisher's 5 come after them.
    const consumer = await js.consumers.get(EVENTS_STREAM, "parse");
    let read = 0;
    while (read < 50) {
      const batch = await consumer.fetch({ max_messages: 50 - read, expires: 2_000 });
      for await (const m of batch) {
        m.ack();
        read++;
      }
    }
    for (let i = 0; i < 5; i++) await js.publish("events.view", "{}");
    const report = await awaitEngine(nc, NO_MARKS, {
      lastEventSeq: 50,
      timeoutMs: 20_000,
      stallMs: 2_000,
      pollMs: 100,
    });
    expect(report.note).toBeUndefined();
    expect(report.stopped).toBeUndefined();
    expect(report.caughtUp).toBe(true);
  }, 60_000);
});
