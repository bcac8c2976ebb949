import { spawn, spawnSync } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { percentile, selfCpuSeconds } from "./util.js";

export interface H2loadResult {
  /** Requests done (with a duration, the ones still in flight at the end are not). */
  requests: number;
  /** Requests started (with a duration: done + those in flight when it ended). */
  started: number;
  succeeded: number;
  failed: number;
  errored: number;
  timeout: number;
  status2xx: number;
  /** Rows of the per-request log with HTTP status 200. */
  logged200: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** CPU of this process (the server under test runs here) per request, µs. */
  serverCpuUsPerReq: number;
  raw: string;
}

export interface H2loadOptions {
  url: string;
  bodyFile: string;
  /** A count of requests (`-n`), or ... */
  requests?: number;
  /** ... a duration in seconds (`-D`): as many requests as fit. */
  durationS?: number;
  /** Concurrent streams on the one connection (`-m`). */
  streams: number;
  logFile: string;
}

/**
 * Runs h2load (one connection, `streams` concurrent streams) posting a prebuilt gRPC frame, a
 * number of requests or for a duration.
 * h2load runs as a child process, so the server under test (in this process) keeps serving.
 * Latency percentiles come from h2load's per-request log (its summary has no percentiles).
 */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    ...(o.durationS !== undefined ? ["-D", String(o.durationS)] : ["-n", String(o.requests ?? 1)]),
    "-c",
    "1",
    "-m",
    String(o.streams),
    "-d",
    o.bodyFile,
    "-H",
    "content-type: application/grpc",
    "-H",
    "te: trailers",
    `--log-file=${o.logFile}`,
    o.url,
  ];
  const cpu0 = selfCpuSeconds();
  const raw = await new Promise<string>((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.once("error", reject);
    child.once("exit", (code) =>
      code === 0 ? resolve(out) : reject(new Error(`h2load exited with ${code}:\n${out}`)),
    );
  });
  const cpu = selfCpuSeconds() - cpu0;
  const num = (re: RegExp, i = 1) => Number(re.exec(raw)?.[i] ?? NaN);
  const reqRe =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/;
  const log = await readFile(o.logFile, "utf8");
  await rm(o.logFile, { force: true });
  const lat: number[] = [];
  let ok200 = 0;
  for (const line of log.split("\n")) {
    const f = line.split("\t");
    if (f.length < 3) continue;
    if (f[1] === "200") ok200++;
    lat.push(Number(f[2]) / 1000);
  }
  lat.sort((a, b) => a - b);
  const requests = num(reqRe, 1);
  return {
    requests,
    started: num(reqRe, 2),
    succeeded: num(reqRe, 4),
    failed: num(reqRe, 5),
    errored: num(reqRe, 6),
    timeout: num(reqRe, 7),
    status2xx: num(/status codes: (\d+) 2xx/),
    logged200: ok200,
    reqPerSec: num(/finished in [\d.]+\w+, ([\d.]+) req\/s/),
    p50Ms: percentile(lat, 50),
    p99Ms: percentile(lat, 99),
    maxMs: lat.length ? lat[lat.length - 1]! : NaN,
    serverCpuUsPerReq: (cpu / requests) * 1e6,
    raw,
  };
}

/** A gRPC length-prefixed message: flag 0 (uncompressed), 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

const onPath = (cmd: string): boolean =>
  spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;

/**
 * Makes sure h2load (Debian's nghttp2-client) is there before step 4 needs it: installs it when
 * this process may (root with apt-get, as on a fresh CI-like machine), otherwise throws one line
 * that says what to install. Steps 4 and 4b cannot run without it.
 */
export function ensureH2load(log: (line: string) => void): void {
  if (onPath("h2load")) return;
  const root = process.getuid?.() === 0;
  if (root && onPath("apt-get")) {
    log("h2load not found: installing Debian's nghttp2-client (apt-get)");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const apt = (args: string[]) => spawnSync("apt-get", args, { stdio: "ignore", env }).status;
    if (apt(["install", "-y", "-qq", "nghttp2-client"]) !== 0) {
      apt(["update", "-qq"]);
      apt(["install", "-y", "-qq", "nghttp2-client"]);
    }
    if (onPath("h2load")) return;
  }
  throw new Error(
    "h2load is needed by bench steps 4 and 4b: install it with `sudo apt-get install -y nghttp2-client`, " +
      "or leave those steps out (BENCH_STEPS=1,2,3,5,6,7)",
  );
}
