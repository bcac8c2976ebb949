import { afterAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../connectors/nats/embedded-server.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { mountSmallFs, type SmallFs } from "./helpers/small-fs.js";

/*
 * A full disk (DESIGN §4, "Serving outlives its inputs"): `reco start` with its DATA_DIR, state
 * and private nats-server store on a 64 MiB filesystem that fills up mid-replay. While it is full
 * every answer comes from memory saying it is stale, /healthz names the full disk, and /livez
 * fails once the stages have failed for LIVENESS_TIMEOUT_MS (a supervisor would restart the
 * process). Once the space is back the engine gets going by itself (nats-server's JetStream hangs
 * after ENOSPC until the server is restarted, and LevelDB keeps its error until reopened), the
 * replay run again publishes nothing twice, and the answers equal those of a run that never
 * filled its disk.
 */

const root = resolve(import.meta.dirname, "..");
const LOG = resolve(root, "..", "shared", "data", "rees46", "2019-Oct-head.csv");
const ROWS = 4000;
const FIRST = 3000;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The environment without NATS_URL: `reco start` runs its private nats-server. */
const env = (extra: Record<string, string>) => {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete e.NATS_URL;
  return e;
};

function reco(args: string[], dataDir: string, timeoutMs = 120_000) {
  return new Promise<{ code: number; out: string; err: string }>((done) =>
    execFile(
      process.execPath,
      [join(root, "bin", "reco.mjs"), ...args],
      { cwd: root, env: env({ DATA_DIR: dataDir }), timeout: timeoutMs },
      (error, out, err) =>
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, out, err }),
    ),
  );
}

interface Engine {
  child: ChildProcess;
  dataDir: string;
  metrics: string;
  client: RecoClient;
  out: () => string;
}

async function startEngine(dataDir: string): Promise<Engine> {
  const metricsPort = await freePort();
  const grpcPort = await freePort();
  let out = "";
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
    cwd: root,
    env: env({
      DATA_DIR: dataDir,
      NATS_PORT: String(await freePort()),
      NATS_MONITOR_PORT: "0",
      GRPC_PORT: String(grpcPort),
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: String(metricsPort),
      WEB_PORT: String(await freePort()),
      PARTITIONS: "2",
      // The design ranking (no model trained at wall-time points) and no idle markers: the two
      // runs compared must not depend on pauses.
      RANKER: "design",
      IDLE_TIMEOUT_MS: "0",
      NATS_RESTART_AFTER_MS: "10000",
      LIVENESS_TIMEOUT_MS: "15000",
      HEALTH_STAGE_FAILING_MS: "3000",
      LOG_LEVEL: "warn",
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
  });
  for (const end = Date.now() + 90_000; !existsSync(join(dataDir, "run.json")); await sleep(200)) {
    if (child.exitCode !== null) throw new Error(`engine exited:\n${out}`);
    if (Date.now() > end) throw new Error(`engine not ready:\n${out}`);
  }
  const client = createRecoClient(`127.0.0.1:${grpcPort}`);
  cleanups.push(async () => client.close());
  return { child, dataDir, metrics: `http://127.0.0.1:${metricsPort}`, client, out: () => out };
}

async function answers(client: RecoClient, users: readonly string[]) {
  const out: Record<string, string[]> = {};
  for (const u of users)
    out[u] = (await client.getRecommendations(u, 10)).items.map((i) => i.itemId);
  return out;
}

/**
 * The answers once the engine has settled: `reco replay` waits for parse, and the stages after it
 * (popularity's table, the profiles) may still apply their last hops on a loaded machine. Read
 * until three reads half a second apart agree.
 */
async function settledAnswers(client: RecoClient, users: readonly string[]) {
  let last = "";
  let same = 0;
  for (const end = Date.now() + 60_000; Date.now() < end; await sleep(500)) {
    const now = JSON.stringify(await answers(client, users));
    same = now === last ? same + 1 : 0;
    last = now;
    if (same >= 2) break;
  }
  return JSON.parse(last) as Record<string, string[]>;
}

async function get(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe("a full disk", () => {
  it("serves from memory while full, fails liveness when stuck, resumes by itself once space is back, loses nothing", async () => {
    const work = await mkdtemp(join(tmpdir(), "reco-full-disk-"));
    cleanups.push(() => rm(work, { recursive: true, force: true }));
    const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, ROWS + 1);
    const all = join(work, "all.csv");
    const first = join(work, "first.csv");
    const second = join(work, "second.csv");
    await writeFile(all, `${lines.join("\n")}\n`);
    await writeFile(first, `${lines.slice(0, FIRST + 1).join("\n")}\n`);
    await writeFile(second, `${[lines[0], ...lines.slice(FIRST + 1)].join("\n")}\n`);
    const users = [...new Set(lines.slice(1).map((l) => l.split(",")[7]!))]
      .sort()
      .filter((_, x) => x % 40 === 0);

    // The reference: the whole slice on a disk with room.
    const ref = await startEngine(join(work, "ref"));
    const refReplay = await reco(["replay", all], ref.dataDir);
    expect(refReplay.code, refReplay.err).toBe(0);
    const reference = await settledAnswers(ref.client, users);
    ref.child.kill("SIGTERM");

    const fs: SmallFs = await mountSmallFs(64);
    cleanups.push(() => fs.cleanup());
    const e = await startEngine(join(fs.dir, "data"));
    const firstReplay = await reco(["replay", first], e.dataDir);
    expect(firstReplay.code, firstReplay.err).toBe(0);
    const before = await answers(e.client, users);

    await fs.fill();
    // Events keep coming while the disk is full: the replay gives up with one line.
    const fullReplay = await reco(["replay", second], e.dataDir, 180_000);
    expect(fullReplay.code).not.toBe(0);
    expect(fullReplay.err.trim().split("\n").length).toBe(1);

    // While full: every answer from memory, stale; health names the disk; liveness fails once
    // the stages have failed for LIVENESS_TIMEOUT_MS.
    let calls = 0;
    const failed: string[] = [];
    let stale = 0;
    let healthSaid = "";
    let livezSaid = "";
    // At least 25 s of calls, and until health and liveness have both said it.
    const fullAt = Date.now();
    const more = () => Date.now() - fullAt < 25_000 || !(healthSaid && livezSaid);
    while (Date.now() - fullAt < 90_000 && more()) {
      const u = users[calls % users.length]!;
      try {
        const r = await e.client.getRecommendations(u, 10, { deadlineMs: 2_000 });
        if (r.stalenessMs > 0n && /^stale since \d{4}-/.test(r.statusMessage)) stale++;
        expect(r.items.length).toBe(before[u]!.length);
      } catch (err) {
        failed.push(String((err as Error).message).slice(0, 120));
      }
      calls++;
      const h = await get(`${e.metrics}/healthz`);
      if (h.status === 503 && /No space left on device|disk full/.test(JSON.stringify(h.body)))
        healthSaid = String(h.body.reason);
      const l = await get(`${e.metrics}/livez`);
      if (l.status === 503) livezSaid = String(l.body.reason);
      await sleep(200);
    }
    expect({ failed, healthSaid: healthSaid !== "", livezSaid: livezSaid !== "" }).toEqual({
      failed: [],
      healthSaid: true,
      livezSaid: true,
    });
    expect(calls).toBeGreaterThan(30);
    expect(stale).toBeGreaterThan(calls / 2);

    // Space again: within 30 s the engine processes again by itself: NATS and JetStream answer
    // and snapshots are written (health's NATS, JetStream and state checks clear). Health turns
    // green once the stages have also run 10 s without failing.
    await fs.free();
    const freedAt = Date.now();
    const inputProblems = (body: Record<string, unknown>) =>
      ((body.problems ?? []) as { check: string }[]).filter((p) =>
        ["nats", "jetstream", "state"].includes(p.check),
      );
    let resumedMs = -1;
    let healthyMs = -1;
    while (healthyMs < 0 && Date.now() - freedAt < 90_000) {
      await sleep(500);
      const h = await get(`${e.metrics}/healthz`).catch(() => ({
        status: 0,
        body: { problems: [{ check: "nats" }] },
      }));
      if (resumedMs < 0 && h.status !== 0 && inputProblems(h.body).length === 0)
        resumedMs = Date.now() - freedAt;
      if (h.status === 200) healthyMs = Date.now() - freedAt;
    }
    expect(
      { resumed: resumedMs >= 0 && resumedMs <= 30_000, healthy: healthyMs >= 0 },
      e.out().slice(-3000),
    ).toEqual({
      resumed: true,
      healthy: true,
    });
    console.log(
      `processing again ${resumedMs} ms, healthy ${healthyMs} ms after the space came back`,
    );
    // The documented way to resume a replay: run it again; nothing is published twice.
    const again = await reco(["replay", second], e.dataDir);
    expect(again.code, again.err).toBe(0);
    // The replay waits for the engine to read and apply what it sent (its last line says so).
    expect(again.out, `${again.out}\n${again.err}\n${e.out().slice(-3000)}`).toMatch(
      /engine \(caught up/,
    );
    // Within a minute every answer equals the uninterrupted run's. Not "once three reads agree":
    // a table that follows its KV bucket may still be re-reading it after NATS came back (a
    // watch left silent by the restart is started again within its stall grace, 15-20 s), and
    // answers that have not moved yet agree with each other too.
    let last: Record<string, string[]> = {};
    const sinceReplay = Date.now();
    for (const end = Date.now() + 60_000; Date.now() < end; await sleep(500)) {
      last = await answers(e.client, users);
      if (JSON.stringify(last) === JSON.stringify(reference)) break;
    }
    expect(last, e.out().slice(-3000)).toEqual(reference);
    console.log(
      `answers equal the uninterrupted run's ${Date.now() - sinceReplay} ms after the replay`,
    );
    expect((await get(`${e.metrics}/livez`)).status).toBe(200);
  }, 420_000);
});
