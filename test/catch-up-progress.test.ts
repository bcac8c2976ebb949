import { afterAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pino } from "pino";
import { Writable } from "node:stream";
import { createProgress, progressLine, reportCatchUp } from "../bin/catch-up.js";
import { replayFile } from "../bin/replay/run.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * Catching up on stored events at start shows events done and pending, events/s and the time
 * left: a log line every 10 s (a live line on a terminal), and one when caught up.
 */

const root = resolve(import.meta.dirname, "..");
const MOVIES = resolve(root, "..", "shared", "data", "ml-latest-small");
const REES46 = resolve(root, "..", "shared", "data", "rees46", "2019-Oct-head.csv");

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** A logger whose lines (msg) a test reads. */
function capture() {
  const lines: { msg: string; [k: string]: unknown }[] = [];
  const out = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n")) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  return { log: pino({ level: "info" }, out), lines };
}

describe("catch-up progress", () => {
  it("says done, pending, events/s and time left", () => {
    const p = createProgress({ delivered: 1000, pending: 100_000 }, 0);
    p({ delivered: 11_000, pending: 90_000 }, 5_000);
    const now = p({ delivered: 21_000, pending: 80_000 }, 10_000);
    expect(now).toMatchObject({ done: 20_000, pending: 80_000, rate: 2_000, leftS: 40 });
    expect(progressLine(now)).toBe(
      "catching up on stored events: 20,000 messages done, 80,000 pending, 2,000/s, about 40 s left",
    );
    // Long waits in minutes, then hours.
    expect(progressLine({ ...now, leftS: 150 })).toMatch(/about 3 min left$/);
    expect(progressLine({ ...now, leftS: 7_200 })).toMatch(/about 2\.0 h left$/);
    // The rate follows the last 10 s, not the whole run.
    const later = p({ delivered: 25_000, pending: 76_000 }, 20_000);
    expect(later.rate).toBe(400);
  });

  it("logs every 10 s while catching up, then once caught up; nothing when it takes no time", async () => {
    let t = 0;
    let delivered = 0;
    const total = 50_000;
    const { log, lines } = capture();
    const r = reportCatchUp({
      position: async () => {
        delivered = Math.min(total, delivered + 1_000);
        t += 1_000;
        return { delivered, pending: total - delivered };
      },
      log,
      pollMs: 1,
      now: () => t,
    });
    await r.done;
    const progress = lines.filter((l) => l.msg.startsWith("catching up"));
    // Once past the 3 s grace, then one line per 10 s of the rest.
    expect(progress.map((l) => l.done)).toEqual([3_000, 13_000, 23_000, 33_000, 43_000]);
    expect(progress[2]!.msg).toBe(
      "catching up on stored events: 23,000 messages done, 26,000 pending, 1,000/s, about 26 s left",
    );
    expect(lines.at(-1)!.msg).toBe("caught up on stored events: 49,000 messages in 49 s (1,000/s)");

    // Caught up within the grace: not a word.
    let u = 0;
    const quick = capture();
    await reportCatchUp({
      position: async () => ({ delivered: u, pending: 2 - Math.min(2, u++) }),
      log: quick.log,
      pollMs: 1,
    }).done;
    expect(quick.lines).toEqual([]);
  });

  it("shows up when `reco start` catches up on events stored while it was down", async () => {
    const nats: TestNats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-catch-up-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const env = { ...process.env, NATS_URL: nats.url, DATA_DIR: join(dir, "data") };
    // The first 40,000 ratings: a catch-up of 15-40 s, well past the 3 s before the first
    // progress line (the whole file took 50 s on an idle machine and 110 s beside the suite).
    const ratings = join(dir, "ratings.csv");
    const lines = (await readFile(join(MOVIES, "ratings.csv"), "utf8")).split("\n");
    await writeFile(ratings, `${lines.slice(0, 40_001).join("\n")}\n`);
    // Stored before the engine runs (the replay does not wait for an engine that is not there).
    await new Promise<void>((done, fail) =>
      execFile(
        process.execPath,
        [join(root, "bin", "reco.mjs"), "replay", "--movies", join(MOVIES, "movies.csv"), ratings],
        { cwd: root, env, timeout: 120_000 },
        (err) => (err && (err as { code?: number }).code !== 0 ? fail(err) : done()),
      ),
    );
    let out = "";
    const app: ChildProcess = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
      cwd: root,
      env: {
        ...env,
        GRPC_PORT: "0",
        WEB_PORT: "0",
        METRICS_PORT: "0",
        PRESET: "movies",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanups.push(async () => {
      if (app.exitCode === null) app.kill("SIGKILL");
    });
    app.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    app.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const msgs = () =>
      out
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => (JSON.parse(l) as { msg: string }).msg);
    // Loaded machines take longer: the wait is for the line.
    for (const end = Date.now() + 400_000; Date.now() < end;) {
      if (msgs().some((m) => m.startsWith("caught up on stored events"))) break;
      if (app.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const said = msgs();
    const first = said.find((m) => m.startsWith("catching up on stored events"));
    expect(first, out.slice(-2000)).toMatch(
      /^catching up on stored events: [\d,]+ messages done, [\d,]+ pending/,
    );
    const last = said.find((m) => m.startsWith("caught up on stored events"));
    expect(last).toMatch(
      /^caught up on stored events: [\d,]+ messages in (\d+ s|\d+ min|[\d.]+ h) \([\d,]+\/s\)$/,
    );
  }, 480_000);

  it("`reco replay` without a terminal says every 10 s how far it is", async () => {
    const nats: TestNats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-replay-progress-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const rows = (await readFile(REES46, "utf8")).split("\n").slice(0, 12_001);
    const file = join(dir, "slice.csv");
    await writeFile(file, `${rows.join("\n")}\n`);
    let said = "";
    const stderr = new Writable({
      write(chunk: Buffer, _enc, done) {
        said += chunk.toString();
        done();
      },
    });
    // 1,000 events/s: about 12 s.
    const s = await replayFile({ file, natsUrl: nats.url, rate: 1_000, awaitEngineMs: 0, stderr });
    expect(s.sent).toBe(12_000);
    const lines = said.split("\n").filter((l) => l.startsWith("replay: "));
    expect(lines.length).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toMatch(
      /^replay: \d+% read, [\d,]+ events sent, ~[\d,]+ to go, [\d,]+ events\/s, about \d+ s left$/,
    );
    const sent = Number(/([\d,]+) events sent/.exec(lines[0]!)![1]!.replaceAll(",", ""));
    expect(sent).toBeGreaterThan(5_000);
    expect(sent).toBeLessThan(12_000);
  }, 120_000);
});
