import { afterEach, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, makeGenericClientConstructor, type ServiceError } from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { connect } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { poller } from "./helpers/harness.js";
import { needRoot } from "./helpers/tools.js";

/**
 * /healthz said 200 "ready" while nats-server was dead, while the disk was
 * full and while JetStream refused to store; once it did not answer at all for 6 minutes. Now it
 * reports 503 with a reason (and gRPC health NOT_SERVING), and answers every request at once.
 */

const HealthClient = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");
function grpcHealth(port: number): Promise<string> {
  const c = new HealthClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    c.Check(
      { service: "" },
      { deadline: Date.now() + 2_000 },
      (err: ServiceError | null, res?: { status: string }) =>
        err || !res ? reject(err ?? new Error("no answer")) : resolve(res.status),
    );
  }).finally(() => c.close());
}

interface Health {
  status: number;
  ms: number;
  body: { status: string; reason?: string; problems: { check: string; reason: string }[] };
}
async function healthz(app: App): Promise<Health> {
  const t0 = Date.now();
  const res = await fetch(`http://127.0.0.1:${app.metricsPort}/healthz`, {
    signal: AbortSignal.timeout(1_000),
  });
  return { status: res.status, ms: Date.now() - t0, body: (await res.json()) as Health["body"] };
}

/** Polls /healthz (every request must answer within 1 s) until `pred` holds. */
const poll = poller({ ms: 20_000, everyMs: 100 });
const healthUntil = (app: App, pred: (h: Health) => boolean, ms: number) =>
  poll(() => healthz(app), pred, ms);

describe("health that tells the truth", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    cleanups.length = 0;
  });

  const start = async (env: Record<string, string>) => {
    const dir = await mkdtemp(join(tmpdir(), "reco-health-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const app = await startApp(
      loadConfig({
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        METRICS_PORT: "0",
        PARTITIONS: "2",
        LOG_LEVEL: "silent",
        ...env,
      }),
      pino({ level: "silent" }),
    );
    cleanups.push(() => app.stop());
    return { app, dir };
  };

  it("NATS dead: 503 naming it within seconds, every request answered at once; back to 200 when it returns", async () => {
    const nats: TestNats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const { app } = await start({ NATS_URL: nats.url });
    expect((await healthUntil(app, (h) => h.status === 200, 10_000)).status).toBe(200);
    expect(await grpcHealth(app.grpcPort)).toBe("SERVING");

    await nats.server.kill();
    const t0 = Date.now();
    let worst = 0;
    const down = await healthUntil(
      app,
      (h) => {
        worst = Math.max(worst, h.ms);
        return h.status === 503;
      },
      10_000,
    );
    expect(down.status).toBe(503);
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(down.body.reason).toMatch(/NATS unreachable/);
    // The parse process (PARSE_PROCESS=1) reports its own connection too.
    const all = await healthUntil(
      app,
      (h) => h.body.problems.some((p) => p.check === "parse-process/nats"),
      5_000,
    );
    expect(all.body.problems.map((p) => p.check)).toContain("parse-process/nats");
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await grpcHealth(app.grpcPort)).toBe("NOT_SERVING");
    // Keep asking for a while with NATS gone: never slow.
    const until = Date.now() + 3_000;
    while (Date.now() < until) worst = Math.max(worst, (await healthz(app)).ms);
    expect(worst).toBeLessThan(500);
    // Alive all the same: a liveness probe must not restart it for NATS's sake.
    expect((await fetch(`http://127.0.0.1:${app.metricsPort}/livez`)).status).toBe(200);

    await nats.restart();
    const up = await healthUntil(app, (h) => h.status === 200, 30_000);
    expect(up.body).toMatchObject({ status: "ok", problems: [] });
  });

  it("a parse process that stops answering (SIGSTOP) is reported, and clears when it goes on", async () => {
    const nats: TestNats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const { app } = await start({ NATS_URL: nats.url });
    const pid = app.parseProcess!.pid()!;
    expect((await healthUntil(app, (h) => h.status === 200, 10_000)).status).toBe(200);
    process.kill(pid, "SIGSTOP");
    cleanups.push(async () => process.kill(pid, "SIGCONT"));
    const stuck = await healthUntil(app, (h) => h.status === 503, 10_000);
    expect(stuck.body.reason).toMatch(/the parse process has not reported its health for \d+ s/);
    process.kill(pid, "SIGCONT");
    expect((await healthUntil(app, (h) => h.status === 200, 10_000)).status).toBe(200);
  });

  it("JetStream's store full: 503 says the disk or max_file_store, and the failing stage says why", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-jsfull-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, "limits.conf"), "jetstream { max_file_store: 4MB }\n");
    const server: EmbeddedNats = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "js"),
      extraArgs: ["-c", join(dir, "limits.conf")],
    });
    cleanups.push(() => server.stop());
    const { app } = await start({
      NATS_URL: server.url,
      PARSE_PROCESS: "0",
      HEALTH_STAGE_FAILING_MS: "1000",
    });
    expect((await healthUntil(app, (h) => h.status === 200, 10_000)).status).toBe(200);
    // Events until the server's store is full (parse's hops fill it too).
    const nc = await connect({ servers: server.url });
    const js = nc.jetstream();
    const pad = "x".repeat(2_000);
    let refused = "";
    for (let i = 0; i < 5_000 && !refused; i++) {
      const e = {
        event_id: crypto.randomUUID(),
        event_type: "view",
        event_ts: new Date().toISOString(),
        user_id: `u${i}`,
        item_id: `p${i % 50}`,
        review_text: pad,
      };
      await js.publish("events.view", JSON.stringify(e)).catch((err: unknown) => {
        refused = String(err);
      });
    }
    await nc.close();
    expect(refused).not.toBe("");
    const h = await healthUntil(
      app,
      (x) => x.body.problems.some((p) => p.check === "stage"),
      30_000,
    );
    expect(h.status).toBe(503);
    const text = h.body.problems.map((p) => p.reason).join("\n");
    expect(text).toMatch(/disk is full or its storage limits \(max_file_store|store is full/);
    expect(text).toMatch(/has been failing for/);
  });

  it("a full disk under DATA_DIR: 503 says the state cannot be written, and where; 200 once there is room", async () => {
    needRoot("the full-disk health test");
    const nats: TestNats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const mnt = await mkdtemp(join(tmpdir(), "reco-fulldisk-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt]);
    cleanups.push(async () => {
      execFileSync("umount", ["-l", mnt]);
      await rm(mnt, { recursive: true, force: true });
    });
    await mkdir(join(mnt, "data"));
    const app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: join(mnt, "data"),
        GRPC_PORT: "0",
        METRICS_PORT: "0",
        PARTITIONS: "2",
        PARSE_PROCESS: "0",
        SNAPSHOT_INTERVAL: "200",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
    cleanups.push(() => app.stop());
    expect((await healthUntil(app, (h) => h.status === 200, 10_000)).status).toBe(200);
    // Fill the disk: LevelDB's next write finds no room.
    const filler = join(mnt, "filler");
    const f = await open(filler, "w");
    const chunk = Buffer.alloc(256 * 1024, 1);
    try {
      for (;;) await f.write(chunk);
    } catch {
      // ENOSPC: full
    }
    await f.close();
    const nc = await connect({ servers: nats.url });
    const js = nc.jetstream();
    for (let i = 0; i < 200; i++)
      await js.publish(
        "events.purchase",
        JSON.stringify({
          event_id: crypto.randomUUID(),
          event_type: "purchase",
          event_ts: new Date().toISOString(),
          user_id: `u${i}`,
          item_id: `p${i % 7}`,
          category_code: "electronics.phone",
          price: 10,
        }),
      );
    await nc.close();
    const full = await healthUntil(app, (h) => h.status === 503, 15_000);
    expect(full.status).toBe(503);
    expect(full.body.reason).toContain(`state cannot be written to ${join(mnt, "data", "state")}`);
    expect(full.body.reason).toMatch(/disk full/);
    await rm(filler);
    expect((await healthUntil(app, (h) => h.status === 200, 20_000)).status).toBe(200);
  });
});
