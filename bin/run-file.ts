import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/**
 * `DATA_DIR/run.json`: what a running engine tells the CLI about itself (pid, every port, version,
 * start time), so every command finds the engine of a data folder instead of assuming default
 * ports (another program may answer on 8080). Written once the engine is ready, removed when it
 * stops; one left by a killed engine is recognised by its pid.
 */
export interface RunInfo {
  pid: number;
  version: string;
  startedAt: string;
  dataDir: string;
  /** host:port of gRPC, e.g. 127.0.0.1:50051. */
  grpc: string;
  /** Base URL of the JSON API and console, e.g. http://127.0.0.1:8080/ ("" without one). */
  web: string;
  /** Base URL of /metrics and /healthz. */
  metrics: string;
  /** The NATS server, without credentials. */
  nats: string;
}

export const RUN_FILE = "run.json";

/**
 * Writes run.json (creating DATA_DIR: a gateway keeps nothing else there) and returns its remover.
 * Throws when it cannot be written; the caller decides whether that matters.
 */
export function writeRunFile(info: RunInfo): () => void {
  const file = join(info.dataDir, RUN_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  mkdirSync(info.dataDir, { recursive: true });
  writeFileSync(tmp, `${JSON.stringify(info, null, 2)}\n`);
  renameSync(tmp, file);
  return () => {
    try {
      const now = JSON.parse(readFileSync(file, "utf8")) as RunInfo;
      if (now.pid === info.pid) rmSync(file, { force: true });
    } catch {
      // gone already
    }
  };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * The engine running on `dataDir` (default DATA_DIR or ./data): its run.json, or a one-line
 * reason why there is none.
 */
export function findEngine(
  dataDir: string = process.env.DATA_DIR ?? "./data",
): { ok: true; info: RunInfo } | { ok: false; why: string } {
  const dir = resolve(dataDir);
  let info: RunInfo;
  try {
    info = JSON.parse(readFileSync(join(dir, RUN_FILE), "utf8")) as RunInfo;
  } catch {
    return {
      ok: false,
      why: `no engine runs with DATA_DIR=${dataDir} (no ${join(dataDir, RUN_FILE)}): start it with npm start, or set DATA_DIR to the engine's`,
    };
  }
  if (!alive(info.pid))
    return {
      ok: false,
      why: `the engine of DATA_DIR=${dataDir} (pid ${info.pid}) is not running any more: start it with npm start`,
    };
  return { ok: true, info };
}
