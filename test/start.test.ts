import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { mkdtemp, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { freePort } from "../connectors/nats/embedded-server.js";
import { until } from "./helpers/harness.js";
import { PORT_TRIES, tookPickedPort } from "./helpers/app-process.js";
import { RUNTIME_ENV, runtimeMissing } from "../bin/node-runtime.mjs";

const root = resolve(import.meta.dirname, "..");

function startReco(env: Record<string, string>): { child: ChildProcess; output: () => string } {
  // Its own process group, so the test can signal the group as a terminal's Ctrl-C does.
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

/**
 * Starts reco on ports found free (`ports`: the settings to pick them for) and waits for its
 * ready line. A port found free may be bound by another test's server, or by the app's own
 * nats-server, before the app binds it: then reco starts again on new ports (as spawnReco does). The
 * environment it started with comes back, for a start after it.
 */
async function startReady(
  base: Record<string, string>,
  ports: readonly string[],
  children: ChildProcess[],
): Promise<ReturnType<typeof startReco> & { env: Record<string, string> }> {
  for (let attempt = 1; ; attempt++) {
    const env = { ...base };
    for (const name of ports) env[name] = String(await freePort());
    const started = startReco(env);
    children.push(started.child);
    const ready = () => started.output().includes("reco-stream ready");
    await waitFor(() => ready() || started.child.exitCode !== null, 30_000);
    if (ready()) return { ...started, env };
    if (!tookPickedPort(started.output(), ports) || attempt >= PORT_TRIES)
      throw new Error(`reco start did not get ready:\n${started.output()}`);
  }
}

const PRIVATE_PORTS = ["NATS_PORT", "NATS_MONITOR_PORT", "GRPC_PORT", "METRICS_PORT"] as const;

const exited = (child: ChildProcess) =>
  new Promise<number | null>((r) => {
    if (child.exitCode !== null) r(child.exitCode);
    else child.once("exit", (code) => r(code));
  });

const waitFor = (pred: () => boolean, ms: number) => until(pred, ms, 50);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // An orphan that exited stays a zombie until init reaps it: that is gone, too.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"));
  } catch {
    return false;
  }
};

describe("reco start", () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) {
      try {
        process.kill(-c.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("starts a private nats-server, logs one ready line, and SIGTERM stops everything", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-start-"));
    dirs.push(dir);
    const { child, output, env } = await startReady({ DATA_DIR: dir }, PRIVATE_PORTS, children);
    const [grpc, metrics, monitor] = [env.GRPC_PORT, env.METRICS_PORT, env.NATS_MONITOR_PORT].map(
      Number,
    ) as [number, number, number];
    expect(output().match(/reco-stream ready/g)).toHaveLength(1);
    const natsPid = Number(/"natsPid":(\d+)/.exec(output())?.[1]);
    expect(alive(natsPid)).toBe(true);

    // Node's flags and malloc's settings (bin/node-runtime.mjs) are in the
    // environment the app's process and its parse process were started with (/proc/<pid>/environ
    // is the environment at exec, which glibc and node read): reco.mjs relaunched node with them.
    const appPid = Number(/"pid":(\d+)[^\n]*reco-stream ready/.exec(output())?.[1]);
    const parsePid = Number(/"parsePid":(\d+)/.exec(output())?.[1]);
    expect(appPid).not.toBe(child.pid);
    for (const pid of [appPid, parsePid]) {
      const started = Object.fromEntries(
        readFileSync(`/proc/${pid}/environ`, "utf8")
          .split("\0")
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
      );
      expect(runtimeMissing(started, []), `pid ${pid}`).toEqual([]);
      expect(started.MALLOC_ARENA_MAX).toBe(RUNTIME_ENV.MALLOC_ARENA_MAX);
    }

    const health = await fetch(`http://127.0.0.1:${metrics}/healthz`);
    expect(health.status).toBe(200);
    // Loopback only by default (GRPC_HOST, METRICS_HOST): not on another interface.
    const lan = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === "IPv4" && !a.internal)?.address;
    if (lan !== undefined) {
      await expect(fetch(`http://${lan}:${metrics}/healthz`)).rejects.toThrow();
      const refused = await new Promise<boolean>((r) => {
        const s = connect(grpc, lan);
        s.once("connect", () => (s.destroy(), r(false)));
        s.once("error", () => r(true));
      });
      expect(refused, `gRPC must not listen on ${lan}`).toBe(true);
    }
    const text = await (await fetch(`http://127.0.0.1:${metrics}/metrics`)).text();
    expect(text).toContain("reco_stage_events_in_total");
    // The private server answers its monitoring endpoints (on loopback).
    const jsz = (await (await fetch(`http://127.0.0.1:${monitor}/jsz`)).json()) as {
      streams?: number;
    };
    expect(jsz.streams).toBeGreaterThan(0);

    // The private server requires credentials kept in DATA_DIR; none reach the log.
    const creds = JSON.parse(readFileSync(join(dir, "nats-credentials.json"), "utf8")) as {
      engine: { pass: string };
      publisher: { pass: string };
    };
    expect(output()).not.toContain(creds.engine.pass);
    expect(output()).not.toContain(creds.publisher.pass);

    child.kill("SIGTERM");
    expect(await exited(child)).toBe(0);
    expect(await waitFor(() => !alive(natsPid), 5_000)).toBe(true);
    expect(output()).toContain("stopped");
  });

  it("drains on Ctrl-C sent to the whole process group, and its nats-server stops after it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-sigint-"));
    dirs.push(dir);
    const { child, output } = await startReady({ DATA_DIR: dir }, PRIVATE_PORTS, children);
    const natsPid = Number(/"natsPid":(\d+)/.exec(output())?.[1]);
    process.kill(-child.pid!, "SIGINT");
    expect(await exited(child)).toBe(0);
    expect(output()).not.toContain("second signal");
    expect(output()).toContain("stopped");
    expect(await waitFor(() => !alive(natsPid), 5_000)).toBe(true);
  });

  it("a SIGKILL of the app takes its nats-server down within seconds; the next start serves again", async () => {
    // The server has its own process group (for the Ctrl-C order above) and used to
    // outlive a SIGKILLed parent until the next start found its pid file.
    const dir = await mkdtemp(join(tmpdir(), "reco-orphan-"));
    dirs.push(dir);
    const first = await startReady({ DATA_DIR: dir }, PRIVATE_PORTS, children);
    const env = first.env;
    const natsPid = Number(/"natsPid":(\d+)/.exec(first.output())?.[1]);
    expect(alive(natsPid)).toBe(true);
    first.child.kill("SIGKILL"); // the app's process only, not its group
    await exited(first.child);
    expect(await waitFor(() => !alive(natsPid), 5_000)).toBe(true);

    const second = startReco(env);
    children.push(second.child);
    expect(
      await waitFor(() => second.output().includes("reco-stream ready"), 30_000),
      second.output(),
    ).toBe(true);
    process.kill(-second.child.pid!, "SIGTERM");
    expect(await exited(second.child)).toBe(0);
  });

  it("refuses a bad setting before touching data, naming the setting and the expected form", async () => {
    const dir = join(tmpdir(), `reco-badcfg-${process.pid}`);
    const { child, output } = startReco({ DATA_DIR: dir, GRPC_PORT: "fifty" });
    children.push(child);
    expect(await exited(child)).toBe(2);
    expect(output()).toMatch(/GRPC_PORT="fifty" is not valid: expected a port number/);
    expect(alive(child.pid!)).toBe(false);
    const { existsSync } = await import("node:fs");
    expect(existsSync(dir)).toBe(false);
  });

  // `npm start --grpc-port 50052` hands npm the flag and reco only "50052".
  it("says how to pass flags through npm when it gets a stray argument", async () => {
    const stray = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start", "50052"], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let err = "";
    stray.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    expect(await exited(stray)).toBe(1);
    expect(err).toContain("too many arguments");
    expect(err).toContain("npm start -- --grpc-port 50052");
  });

  it("names the install command when nats-server is not on PATH", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-nobin-"));
    dirs.push(dir);
    const { child, output } = startReco({
      DATA_DIR: dir,
      PATH: "/nonexistent",
      NATS_PORT: String(await freePort()),
      NATS_MONITOR_PORT: String(await freePort()),
      GRPC_PORT: String(await freePort()),
      METRICS_PORT: String(await freePort()),
    });
    children.push(child);
    expect(await exited(child)).toBe(1);
    expect(output()).toContain("apt-get install -y nats-server");
  });
});

describe("reco start when NATS is gone", () => {
  it("exits within STOP_TIMEOUT_MS of SIGTERM even if draining cannot reach NATS", async () => {
    const { setupNats } = await import("./helpers/nats.js");
    const nats = await setupNats();
    const dir = await mkdtemp(join(tmpdir(), "reco-stuck-"));
    try {
      const children: ChildProcess[] = [];
      const { child } = await startReady(
        { NATS_URL: nats.url, DATA_DIR: dir, STOP_TIMEOUT_MS: "3000" },
        ["GRPC_PORT", "METRICS_PORT"],
        children,
      );
      await nats.server.kill(); // NATS disappears for good
      const t0 = Date.now();
      process.kill(-child.pid!, "SIGTERM");
      const code = await exited(child);
      expect(Date.now() - t0).toBeLessThan(15_000);
      expect(code === 0 || code === 1).toBe(true);
    } finally {
      await nats.cleanup().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
