import { spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { freePort } from "../../connectors/nats/embedded-server.js";
import { sleep } from "./harness.js";
import { runtimeEnv } from "../../bin/node-runtime.mjs";

/**
 * `reco start` as a child process, for the tests that SIGKILL it (chaos, late-kill,
 * recommender-kill): spawned on free gRPC and metrics ports, its output kept, ready once
 * /healthz answers 200.
 */

const root = resolve(import.meta.dirname, "..", "..");

export interface AppProcess {
  child: ChildProcess;
  metricsPort: number;
  grpcPort: number;
  /** WEB_PORT, when the helper picked it (SpawnOptions.webPort); else 0. */
  webPort: number;
  output: () => string;
}

export interface SpawnOptions {
  /** Settings over the test process's environment (the ports are set here). */
  env: Record<string, string>;
  /**
   * The helper picks WEB_PORT as it picks the gRPC and metrics ports (AppProcess.webPort), so a
   * start that finds it taken is tried again on a new one: a port the caller picked and set is
   * the caller's, and a start that lost it to another test's server failed.
   */
  webPort?: boolean;
  /** A process group of its own, as a shell job: killGroup() then kills its parse process too. */
  detached?: boolean;
  /** Ready only when this holds too (after /healthz said 200). */
  ready?: (app: AppProcess) => Promise<boolean>;
  /** A process that dies before it is ready is returned (a fault hook killed it) instead of failing. */
  mayDie?: boolean;
  /** How long it may take to become ready. */
  timeoutMs: number;
  pollMs: number;
  /** Called with the app as soon as it is spawned (to register its teardown). */
  spawned?: (app: AppProcess) => void;
}

/**
 * A port found free can be taken by another test's server before the app binds it: the app then
 * exits naming the setting. Such a start is tried again on new ports (the gRPC and metrics ones,
 * which this helper picks; a port the caller set is the caller's).
 */
export const PORT_TRIES = 3;

/**
 * Whether a start's output says it failed on one of the `picked` port settings as taken
 * (`<SETTING>=<port> is taken`, bin/app-ports.ts): then it may be tried again on new ports.
 */
export function tookPickedPort(output: string, picked: readonly string[]): boolean {
  const taken = /\b([A-Z_]+_PORT)=\d+ is taken/.exec(output);
  return taken !== null && picked.includes(taken[1]!);
}

export async function spawnReco(o: SpawnOptions): Promise<AppProcess> {
  const picked = ["GRPC_PORT", "METRICS_PORT", ...(o.webPort ? ["WEB_PORT"] : [])].filter(
    (p) => !(p in o.env),
  );
  for (let attempt = 1; ; attempt++)
    try {
      return await spawnOnce(o);
    } catch (err) {
      const again = err instanceof Error && tookPickedPort(err.message, picked);
      if (!again || attempt >= PORT_TRIES) throw err;
    }
}

async function spawnOnce(o: SpawnOptions): Promise<AppProcess> {
  const metricsPort = await freePort();
  const grpcPort = await freePort();
  const webPort = o.webPort && !("WEB_PORT" in o.env) ? await freePort() : 0;
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
    cwd: root,
    ...(o.detached ? { detached: true } : {}),
    // With node's runtime settings given here, as the bench gives them (bin/node-runtime.mjs):
    // without them reco.mjs starts node again, and `child` would be that wrapper, not the app
    // whose children (parse, ingest) and signals the tests look at.
    env: runtimeEnv({
      ...process.env,
      GRPC_PORT: String(grpcPort),
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: String(metricsPort),
      ...(webPort > 0 ? { WEB_PORT: String(webPort) } : {}),
      ...o.env,
    }),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const app: AppProcess = { child, metricsPort, grpcPort, webPort, output: () => out };
  o.spawned?.(app);
  for (const end = Date.now() + o.timeoutMs; Date.now() < end; await sleep(o.pollMs)) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (o.mayDie) return app;
      throw new Error(`reco start exited:\n${out}`);
    }
    try {
      const healthy = (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).status === 200;
      if (healthy && (o.ready === undefined || (await o.ready(app)))) return app;
    } catch {
      // not listening yet
    }
  }
  throw new Error(`reco start did not become ready:\n${out}`);
}

/** Resolves once the child has exited (at once if it has). */
export const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((r) => c.once("exit", () => r()));

/** SIGKILLs the app's process and waits for its exit. */
export async function kill(app: AppProcess): Promise<void> {
  app.child.kill("SIGKILL");
  await exited(app.child);
}

/** SIGKILLs the app's process group (main and parse processes; spawned `detached`). */
export async function killGroup(app: AppProcess): Promise<void> {
  try {
    process.kill(-app.child.pid!, "SIGKILL");
  } catch {
    // already gone
  }
  await exited(app.child);
}
