import { spawn, type ChildProcess } from "node:child_process";
import { join, resolve } from "node:path";
import { freePort } from "../../connectors/nats/embedded-server.js";
import { sleep, type Cleanup } from "./harness.js";

/**
 * `reco worker` as a child process on free metrics and gRPC ports (loopback), its output kept,
 * SIGKILLed by the cleanup if still running, and ready once it logs "reco-stream ready".
 */

const root = resolve(import.meta.dirname, "..", "..");

export interface WorkerProcess {
  id: string;
  child: ChildProcess;
  metricsPort: number;
  output: () => string;
}

export async function spawnWorker(
  id: string,
  /** Settings over the test process's environment (NATS_URL, DATA_DIR, PARTITIONS, …). */
  env: Record<string, string>,
  cleanups: { add(c: Cleanup): void },
  timeoutMs = 60_000,
): Promise<WorkerProcess> {
  const metricsPort = await freePort();
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "worker"], {
    cwd: root,
    env: {
      ...process.env,
      WORKER_ID: id,
      METRICS_PORT: String(metricsPort),
      GRPC_PORT: String(await freePort()),
      GRPC_HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  cleanups.add(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
  });
  for (const until = Date.now() + timeoutMs; !out.includes("reco-stream ready"); await sleep(100)) {
    if (child.exitCode !== null) throw new Error(`worker ${id} exited:\n${out}`);
    if (Date.now() > until) throw new Error(`worker ${id} not ready:\n${out}`);
  }
  return { id, child, metricsPort, output: () => out };
}
