import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { setupNats } from "./helpers/nats.js";
import { gauges, stageIds, stagesBehind, stagesMissing } from "./helpers/positions.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import { replayFile } from "../bin/replay/run.js";
import { sleep } from "./helpers/harness.js";
import { exited, killGroup, spawnReco, type AppProcess } from "./helpers/app-process.js";

/**
 * `reco start` with SERVE_PROCESS=1 serves from a process that runs
 * no stage, with the stages in a child at INGEST_NICE (and parse below it). Real parts: a
 * nats-server, `reco start` as a process, gRPC and /healthz on loopback. A slice of the REES46
 * log is replayed into a one-process app (SERVE_PROCESS=0) and into the split one; the split one's
 * ingest process is SIGKILLed midway (serving answers on from its replicas, /healthz says why,
 * the child comes back by itself), later the serving process itself (its children die with it,
 * a new start on the same DATA_DIR recovers): every sampled user's answer (items, sources,
 * explanations, scores, watermark) is the one-process app's, for the blend and the design ranking.
 */
const root = resolve(import.meta.dirname, "..");
const LOG = resolve(root, "../shared/data/rees46/2019-Oct-head.csv");
const ROWS = 2000;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

function start(natsUrl: string, dataDir: string, env: Record<string, string>) {
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
      ...env,
    },
    detached: true,
    spawned: (app) => cleanups.push(() => killGroup(app)),
    timeoutMs: 90_000,
    pollMs: 100,
  });
}

async function metric(app: AppProcess, name: string, ...labels: string[]) {
  const text = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** Every stage caught up with the events (read from the serving process's merged /metrics). */
async function caughtUp(app: AppProcess, events: number, jsm: JetStreamManager, blend: boolean) {
  let seen = "";
  for (const until = Date.now() + 120_000; Date.now() < until; await sleep(250)) {
    const positions = await gauges(app.metricsPort, "reco_stage_position");
    const missing = stagesMissing(stageIds(blend ? "blend" : "design", 3), positions);
    const behind = missing === 0 ? await stagesBehind(jsm, positions) : -1;
    const fed = blend ? await metric(app, "reco_recommender", 'name="events"') : events;
    const covisit = blend ? await metric(app, "reco_recommender", 'name="covisit_events"') : events;
    const point = blend ? await metric(app, "reco_recommender", 'name="train_point"') : 1;
    const model = blend ? await metric(app, "reco_recommender", 'name="model_point"') : 1;
    // Split: the serving process's replica of the blend's sources has everything too.
    const split = blend && (await metric(app, "reco_blend_replica", 'name="ready"')) !== undefined;
    const replica = split
      ? (await metric(app, "reco_blend_replica", 'name="ready"')) === 1 &&
        (await metric(app, "reco_blend_replica", 'name="staleness_ms"')) === 0
      : true;
    if (
      behind === 0 &&
      fed === events &&
      covisit === events &&
      point! > 0 &&
      model === point &&
      replica
    )
      return;
    seen = JSON.stringify({ events, behind, fed, covisit, point, model, n: positions.length });
  }
  throw new Error(`not caught up: ${seen}\n${app.output()}`);
}

/** The answers once they equal `expected` (the replicas follow the stages by a moment), or the last. */
async function settled(app: AppProcess, users: string[], expected: unknown) {
  let last: unknown;
  for (const end = Date.now() + 15_000; Date.now() < end; await sleep(250)) {
    last = await answers(app, users);
    if (JSON.stringify(last) === JSON.stringify(expected)) break;
  }
  return last;
}

async function answers(app: AppProcess, users: string[]) {
  const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  try {
    const out: Record<string, unknown> = {};
    for (const u of users) {
      const r = await client.getRecommendations(u, 10);
      out[u] = {
        wm: Number(r.watermark?.seconds ?? 0n),
        top: r.topCategories.map((c) => c.category),
        items: r.items.map((i) => [i.itemId, i.source, i.explanation, i.score]),
      };
    }
    return out;
  } finally {
    client.close();
  }
}

const health = async (app: AppProcess) => {
  const res = await fetch(`http://127.0.0.1:${app.metricsPort}/healthz`);
  return { status: res.status, body: (await res.json()) as { problems: { check: string }[] } };
};

/** The children of `pid` with their niceness. */
function children(pid: number): { pid: number; nice: number; args: string }[] {
  let out = "";
  try {
    out = execFileSync("ps", ["-o", "pid=,ni=,args=", "--ppid", String(pid)], { encoding: "utf8" });
  } catch {
    return []; // ps exits 1 when there is none
  }
  return out
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [p, ni, ...args] = l.trim().split(/\s+/);
      return { pid: Number(p), nice: Number(ni), args: args.join(" ") };
    });
}
/** The niceness of process `pid`. */
const niceOf = (pid: number) =>
  Number(execFileSync("ps", ["-o", "ni=", "-p", String(pid)], { encoding: "utf8" }).trim());
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function until(check: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(100))
    if (await check()) return true;
  return false;
}

async function slice(): Promise<{ first: string; second: string; users: string[]; rows: number }> {
  const dir = await mkdtemp(join(tmpdir(), "reco-serveproc-log-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, ROWS + 1);
  const half = Math.floor(ROWS / 2);
  const first = join(dir, "first.csv");
  const second = join(dir, "second.csv");
  await writeFile(first, lines.slice(0, half + 1).join("\n") + "\n");
  await writeFile(second, [lines[0], ...lines.slice(half + 1)].join("\n") + "\n");
  const users = [...new Set(lines.slice(1).map((l) => l.split(",")[7]!))]
    .sort()
    .filter((_, x) => x % 20 === 0);
  return { first, second, users, rows: ROWS };
}

async function natsFor() {
  const nats = await setupNats();
  cleanups.push(() => nats.cleanup());
  const nc: NatsConnection = await connect({ servers: nats.url });
  cleanups.push(() => nc.close());
  const dir = await mkdtemp(join(tmpdir(), "reco-serveproc-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return {
    url: nats.url,
    nc,
    jsm: await nc.jetstreamManager(),
    data: join(dir, "data"),
    pid: nats.server.pid,
  };
}

describe.each(["blend", "design"] as const)("reco start serving apart (RANKER=%s)", (ranker) => {
  it("answers as one process does, across SIGKILLs of the ingest and the serving process", async () => {
    const log = await slice();
    const blend = ranker === "blend";

    // The reference: everything in one process.
    const a = await natsFor();
    const one = await start(a.url, a.data, { SERVE_PROCESS: "0", RANKER: ranker });
    for (const file of [log.first, log.second])
      expect((await replayFile({ file, nc: a.nc })).rejected).toBe(0);
    await caughtUp(one, log.rows, a.jsm, blend);
    // Settled: the same twice in a row, 1 s apart (the popularity table follows its KV bucket).
    let reference = await answers(one, log.users);
    for (let i = 0; i < 30; i++) {
      await sleep(1000);
      const next = await answers(one, log.users);
      if (JSON.stringify(next) === JSON.stringify(reference)) break;
      reference = next;
    }
    expect(Object.values(reference).every((r) => (r as { wm: number }).wm > 0)).toBe(true);
    await killGroup(one);

    const b = await natsFor();
    let app = await start(b.url, b.data, { SERVE_PROCESS: "1", RANKER: ranker });
    const servingPid = app.child.pid!;
    // Serving at the niceness it was started with, the ingest process (and parse) 10 above it
    // (`nice -n 10`, so at most 19 when the suite itself runs niced).
    const ingestNice = Math.min(19, niceOf(servingPid) + 10);
    const kids = children(servingPid).filter((c) => c.args.includes("ingest-child"));
    expect(kids).toHaveLength(1);
    expect(kids[0]!.nice).toBe(ingestNice);
    const parse = children(kids[0]!.pid).filter((c) => c.args.includes("parse-child"));
    expect(parse).toHaveLength(1);
    expect(parse[0]!.nice).toBe(ingestNice);
    expect(children(servingPid).some((c) => c.args.includes("parse-child"))).toBe(false);

    expect((await replayFile({ file: log.first, nc: b.nc })).rejected).toBe(0);
    await caughtUp(app, log.rows / 2, b.jsm, blend);

    // SIGKILL the ingest process: serving goes on from its replicas (the blend: from the
    // replica of its sources, the same answers, now with their staleness), /healthz says why.
    const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    cleanups.push(async () => client.close());
    // Caught up is the ingest process's positions; the serving process's replica applies what
    // it sends a moment later, and says at least 1 ms stale until then.
    let asked: Awaited<ReturnType<typeof client.getRecommendations>>[] = [];
    const fresh = await until(async () => {
      asked = await Promise.all(log.users.map((u) => client.getRecommendations(u, 10)));
      return asked.every((r) => r.stalenessMs === 0n);
    }, 10_000);
    expect(fresh).toBe(true);
    // The serving process starts a new ingest process 100 ms after the exit, and once that one
    // has sent what it holds the replica is caught up again (staleness 0): ~0.6 s after the kill
    // here, less than a loaded test takes to ask. With NATS stopped (SIGSTOP) the new one cannot
    // get there (it connects first), and the answers below are all from while it is down.
    process.kill(b.pid, "SIGSTOP");
    let during: Awaited<ReturnType<typeof client.getRecommendations>>[];
    let whileDown: Awaited<ReturnType<typeof health>>;
    try {
      process.kill(kids[0]!.pid, "SIGKILL");
      // Gone once the serving process has reaped it: its next answer knows.
      expect(await until(() => !alive(kids[0]!.pid), 5_000)).toBe(true);
      during = await Promise.all(log.users.map((u) => client.getRecommendations(u, 10)));
      whileDown = await health(app);
    } finally {
      process.kill(b.pid, "SIGCONT");
    }
    const itemsOf = (r: (typeof during)[number]) =>
      r.items.map((i) => [i.itemId, i.source, i.explanation, i.score]);
    expect(during.map(itemsOf)).toEqual(asked.map(itemsOf));
    if (blend) {
      // Blended, not the design fallback: history and similar items come from the replica.
      expect(during.some((r) => r.items.some((i) => i.source === Source.HISTORY))).toBe(true);
      expect(during.map((r) => r.stalenessMs).filter((ms) => ms === 0n)).toEqual([]);
    }
    expect(whileDown.status).toBe(503);
    expect(whileDown.body.problems.map((p) => p.check)).toContain("ingest-process");
    // It comes back by itself, at the same niceness.
    expect(await until(async () => (await health(app)).status === 200, 60_000)).toBe(true);
    const again = children(servingPid).filter((c) => c.args.includes("ingest-child"));
    expect(again).toHaveLength(1);
    expect(again[0]!.pid).not.toBe(kids[0]!.pid);
    expect(again[0]!.nice).toBe(ingestNice);

    expect((await replayFile({ file: log.second, nc: b.nc })).rejected).toBe(0);
    await caughtUp(app, log.rows, b.jsm, blend);
    const served = async () =>
      blend
        ? ((await metric(app, "reco_serving_answers_total", 'from="blend"')) ?? 0)
        : ((await metric(app, "reco_serving_answers_total", 'from="replica"')) ?? 0);
    const before = await served();
    expect(await settled(app, log.users, reference)).toEqual(reference);
    const after = await served();
    // Every answer came from where it should: none from the design fallback.
    expect(after - before).toBeGreaterThanOrEqual(log.users.length);
    expect((await metric(app, "reco_serving_answers_total", 'from="replica_fallback"')) ?? 0).toBe(
      0,
    );

    // SIGKILL the serving process alone: its children die with it (no orphan holds the state).
    const ingestPid = again[0]!.pid;
    const parsePid = children(ingestPid).find((c) => c.args.includes("parse-child"))!.pid;
    process.kill(servingPid, "SIGKILL");
    await exited(app.child);
    expect(await until(() => !alive(ingestPid) && !alive(parsePid), 10_000)).toBe(true);
    app = await start(b.url, b.data, { SERVE_PROCESS: "1", RANKER: ranker });
    await caughtUp(app, log.rows, b.jsm, blend);
    expect(await settled(app, log.users, reference)).toEqual(reference);
    await killGroup(app);
  }, 400_000);
});
