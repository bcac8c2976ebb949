import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { createServer } from "node:net";

/** Raised when no `nats-server` binary can be started. */
export class NatsServerMissingError extends Error {
  override name = "NatsServerMissingError";
}

/** Raised when the child server exits or stays silent before it is ready. */
export class NatsServerStartError extends Error {
  override name = "NatsServerStartError";
}

export interface EmbeddedNatsOptions {
  /** Client port; 0 picks a free one. */
  port: number;
  /** JetStream store directory (created if missing). */
  storeDir: string;
  /** Binary to run; default `nats-server` from PATH. */
  binary?: string;
  /** How long to wait for "Server is ready". Default 15 s. */
  readyTimeoutMs?: number;
  /** HTTP monitoring port (/varz, /jsz), bound to the same loopback address; 0 or absent: none. */
  monitorPort?: number;
  /** Extra command-line arguments (cluster routes, server name, ...). */
  extraArgs?: string[];
  /**
   * Run the child in its own process group, so a Ctrl-C in the terminal reaches only us and we
   * stop the server after draining. Default false (tests share the group). Either way the child
   * gets SIGTERM when this process dies, however it dies (see `parentDeathPrefix`); where that is
   * not available, a pid file in the store lets the next start stop a server left behind.
   */
  detached?: boolean;
  /** The server's log (stderr) after it is ready, e.g. to keep it in a file; dropped otherwise. */
  onLog?: (chunk: string) => void;
}

export interface EmbeddedNats {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the child is gone. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (for failure tests). */
  kill(): Promise<void>;
  /** Resolves when the child exits, for whatever reason. */
  exited(): Promise<number | null>;
}

/** A free TCP port on loopback, as the OS hands it out. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * The command prefix that makes the kernel send the child SIGTERM when this process dies, even by
 * SIGKILL: util-linux `setpriv --pdeathsig` sets PR_SET_PDEATHSIG and execs the command (the
 * same pid, no process in between). Node has no prctl() of its own; the alternative, a watchdog
 * process reading a pipe, would be one more process per server. The signal follows the thread
 * that forked: here Node's main thread (or a test worker's thread), which lives as long as we
 * do. Empty where setpriv is missing (not Linux): the pid file then covers a SIGKILLed parent.
 */
export function parentDeathPrefix(signal: "TERM" | "KILL" = "TERM"): string[] {
  if (hasSetpriv === undefined) {
    const probe = spawnSync("setpriv", ["--pdeathsig", "TERM", "--", "true"], { stdio: "ignore" });
    hasSetpriv = probe.status === 0;
  }
  return hasSetpriv ? ["setpriv", "--pdeathsig", signal, "--"] : [];
}
let hasSetpriv: boolean | undefined;

/** The path `binary` runs as (PATH lookup), or undefined when there is no such executable. */
function findExecutable(binary: string): string | undefined {
  const candidates = binary.includes("/")
    ? [binary]
    : (process.env.PATH ?? "").split(delimiter).map((d) => join(d || ".", binary));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  return undefined;
}

/**
 * Starts a private `nats-server -js` child and waits until it accepts clients.
 * The child dies with this process: it gets SIGTERM from the kernel when we die however we die
 * (`parentDeathPrefix`), and SIGKILL on a normal `exit`.
 */
export async function startEmbeddedNats(options: EmbeddedNatsOptions): Promise<EmbeddedNats> {
  const port = options.port === 0 ? await freePort() : options.port;
  const binary = options.binary ?? "nats-server";
  // Looked up here: behind setpriv, a missing binary would be setpriv's exit code 127. Before the
  // store directory is made, so that a failed start leaves nothing behind.
  if (findExecutable(binary) === undefined) throw missingBinary(binary);
  await mkdir(options.storeDir, { recursive: true });
  const args = [
    "-js",
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    "-sd",
    options.storeDir,
    ...(options.monitorPort ? ["-m", String(options.monitorPort)] : []),
    ...(options.extraArgs ?? []),
  ];
  const pidFile = join(options.storeDir, "nats-server.pid");
  if (options.detached) {
    await stopStaleServer(pidFile);
    args.push("-P", pidFile);
  }
  const [command = binary, ...prefixArgs] = [...parentDeathPrefix(), binary];
  const child: ChildProcess = spawn(command, [...prefixArgs, ...args], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: options.detached ?? false,
  });
  const exitPromise = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.once("error", () => resolve(null));
  });
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  await new Promise<void>((resolve, reject) => {
    let log = "";
    const timer = setTimeout(
      () => fail(new NatsServerStartError(`nats-server did not become ready:\n${log}`)),
      options.readyTimeoutMs ?? 15_000,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(err);
    };
    child.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") fail(missingBinary(binary));
      else fail(new NatsServerStartError(`cannot start ${binary}: ${err.message}`));
    });
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      if (log.length < 20_000) log += chunk;
      if (log.includes("Server is ready")) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exitPromise.then((code) =>
      fail(new NatsServerStartError(`nats-server exited with code ${code}:\n${log}`)),
    );
  });
  // Keep draining stderr so the child never blocks on a full pipe.
  if (options.onLog) child.stderr?.on("data", options.onLog);
  child.stderr?.resume();

  const pid = child.pid ?? -1;
  const stopWith = async (signal: NodeJS.Signals, graceMs: number) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exitPromise;
    clearTimeout(timer);
    process.removeListener("exit", killOnExit);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    pid,
    stop: (graceMs = 5_000) => stopWith("SIGTERM", graceMs),
    kill: () => stopWith("SIGKILL", 0),
    exited: () => exitPromise,
  };
}

function missingBinary(binary: string): NatsServerMissingError {
  return new NatsServerMissingError(
    `'${binary}' was not found on PATH. Install it (Debian/Ubuntu: 'sudo apt-get install -y nats-server') ` +
      "or set NATS_URL to an existing server.",
  );
}

/** Stops a nats-server whose pid file is in our store: left behind by a parent that died. */
async function stopStaleServer(pidFile: string): Promise<void> {
  const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0) return;
  const cmd = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmd.includes("nats-server") || !cmd.includes(pidFile)) return;
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 50));
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
  }
  process.kill(pid, "SIGKILL");
}
