/**
 * A unary gRPC load generator for step 4 that, unlike h2load, asks a different request each time:
 * one HTTP/2 connection, `streams` concurrent calls, each posting the next of a list of prebuilt
 * length-prefixed frames (round robin over many users), and the latency of each call. Two
 * clients: `raw` (the default, bench/h2-raw.ts: prebuilt HTTP/2 frames on a socket, a few µs of
 * CPU per call, answers told from errors by their frames) and `node` (node:http2: the grpc-status
 * and grpc-message of every answer read, ~75-130 µs of CPU per call; the bench's warm-up, which
 * asks every user once, uses it).
 *
 * Run as a child process (`tsx bench/grpc-load.ts <json options>`), so the server under test keeps
 * its own event loop; prints one JSON line (GrpcLoadResult). h2load on the same echo server in the
 * same run shows what this generator costs (bench/README.md, step 4).
 */
import { connect, constants } from "node:http2";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { watchLoopDelay } from "./loop-delay.js";
import { connectRawH2, TRAILERS_ONLY, type RawH2Client } from "./h2-raw.js";
import { repoPath, spawnTs } from "./child.js";

export interface GrpcLoadOptions {
  /** http://host:port/package.Service/Method */
  url: string;
  /** Concatenated gRPC frames (flag, 4-byte length, message), one per request body. */
  bodiesFile: string;
  streams: number;
  /** A number of calls, or ... */
  requests?: number;
  /** ... a duration in seconds. */
  durationS?: number;
  /** Calls made first and not counted. */
  warmup?: number;
  /** `raw` (default): bench/h2-raw.ts; `node`: node:http2, every grpc-status read. */
  client?: "raw" | "node";
  /** The generator's event-loop sampling interval (ms; default 1, as the server's row). */
  loopResolutionMs?: number;
}

export interface GrpcLoadResult {
  /** Calls completed in the measured part. */
  requests: number;
  /** Calls with grpc-status 0. */
  ok: number;
  /**
   * grpc-status → calls, for the others (-1: no status, a transport error; -2, raw client: a
   * trailers-only answer, an error status not decoded).
   */
  codes: Record<string, number>;
  /** grpc-status → the grpc-message of its first call: why the server said so. */
  messages?: Record<string, string>;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** This generator's CPU time per call (µs), user + system. */
  clientCpuUsPerReq: number;
  /** Distinct bodies cycled through. */
  bodies: number;
  client: "raw" | "node";
  /** This generator's own event-loop delay, p99 (ms): high means it, not the server, lagged. */
  clientLoopP99Ms: number;
  /** ... and its max (ms). */
  clientLoopMaxMs: number;
}

/** Splits a file of concatenated gRPC frames into one buffer per frame. */
export function splitFrames(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 5 <= buf.length) {
    const len = buf.readUInt32BE(at + 1);
    out.push(buf.subarray(at, at + 5 + len));
    at += 5 + len;
  }
  return out;
}

interface Measured {
  lat: number[];
  codes: Record<string, number>;
  ok: number;
  secs: number;
}
/** Runs `count` calls (or until `untilMs`) over `streams` concurrent ones. */
type Runner = (count: number, untilMs: number, record: boolean) => Promise<Measured>;

/** The raw client's runner: each call's end starts the next, no promise per call. */
function rawRunner(client: RawH2Client, bodies: number, streams: number): Runner {
  let next = 0;
  return (count, untilMs, record) =>
    new Promise((resolve) => {
      const lat: number[] = [];
      const codes: Record<string, number> = {};
      let ok = 0;
      let issued = 0;
      let active = 0;
      const t0 = performance.now();
      const end = () => resolve({ lat, codes, ok, secs: (performance.now() - t0) / 1000 });
      const done = (code: number, ms: number) => {
        active--;
        if (record) {
          lat.push(ms);
          if (code === 0) ok++;
          else codes[code] = (codes[code] ?? 0) + 1;
        }
        issue();
      };
      const issue = () => {
        if (issued < count && performance.now() < untilMs) {
          issued++;
          active++;
          client.call(next++ % bodies, done);
        } else if (active === 0) end();
      };
      for (let s = 0; s < streams; s++) issue();
    });
}

export async function runGrpcLoad(o: GrpcLoadOptions): Promise<GrpcLoadResult> {
  const bodies = splitFrames(readFileSync(o.bodiesFile));
  if (bodies.length === 0) throw new Error(`no frames in ${o.bodiesFile}`);
  const kind = o.client ?? "raw";
  /** grpc-status → the first grpc-message seen with it. */
  const messages: Record<string, string> = {};
  let run: Runner;
  let close: () => void;
  if (kind === "raw") {
    const client = await connectRawH2(o.url, bodies);
    run = rawRunner(client, bodies.length, o.streams);
    close = () => client.close();
  } else {
    const node = await nodeRunner(o, bodies, messages);
    run = node.run;
    close = node.close;
  }
  if (o.warmup) await run(o.warmup, Infinity, false);
  const resolution = o.loopResolutionMs ?? 1;
  const loop = watchLoopDelay(resolution);
  const cpu0 = process.cpuUsage();
  const r =
    o.durationS !== undefined
      ? await run(Infinity, performance.now() + o.durationS * 1000, true)
      : await run(o.requests ?? 1, Infinity, true);
  const cpu = process.cpuUsage(cpu0);
  const loopDelay = loop.stop();
  close();
  if (kind === "raw" && r.codes[TRAILERS_ONLY] !== undefined)
    messages[TRAILERS_ONLY] =
      "trailers-only answers: gRPC errors (ask with client node to read them)";
  const lat = r.lat.sort((a, b) => a - b);
  const pct = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.ceil((p / 100) * lat.length) - 1)]! : NaN;
  return {
    requests: lat.length,
    ok: r.ok,
    codes: r.codes,
    messages,
    reqPerSec: lat.length / r.secs,
    p50Ms: pct(50),
    p99Ms: pct(99),
    maxMs: lat.length ? lat[lat.length - 1]! : NaN,
    clientCpuUsPerReq: lat.length ? (cpu.user + cpu.system) / lat.length : NaN,
    bodies: bodies.length,
    client: kind,
    clientLoopP99Ms: loopDelay.p99Ms,
    clientLoopMaxMs: loopDelay.maxMs,
  };
}

/** node:http2's runner: a promise per call, every grpc-status and grpc-message read. */
async function nodeRunner(
  o: GrpcLoadOptions,
  bodies: Buffer[],
  messages: Record<string, string>,
): Promise<{ run: Runner; close: () => void }> {
  const u = new URL(o.url);
  const session = connect(`${u.protocol}//${u.host}`);
  session.on("error", () => undefined);
  await new Promise<void>((resolve, reject) => {
    session.once("connect", () => resolve());
    session.once("error", reject);
  });
  const headers = {
    [constants.HTTP2_HEADER_METHOD]: "POST",
    [constants.HTTP2_HEADER_PATH]: u.pathname,
    "content-type": "application/grpc",
    te: "trailers",
  };
  let next = 0;
  /** One call; resolves with its grpc-status (-1 when the stream failed). */
  const call = (body: Buffer): Promise<number> =>
    new Promise((resolve) => {
      const req = session.request(headers, { endStream: false });
      let code = -1;
      const take = (h: Record<string, unknown>) => {
        const s = h["grpc-status"];
        if (s !== undefined) code = Number(s);
        const m = h["grpc-message"];
        if (code > 0 && typeof m === "string" && messages[code] === undefined)
          messages[code] = decodeURIComponent(m);
      };
      req.on("response", take); // a trailers-only answer (an error) carries it here
      req.on("trailers", take);
      req.on("data", () => undefined);
      req.on("error", () => resolve(-1));
      req.on("close", () => resolve(code));
      req.end(body);
    });

  const run: Runner = async (count, untilMs, record) => {
    const lat: number[] = [];
    const codes: Record<string, number> = {};
    let ok = 0;
    let issued = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (issued < count && performance.now() < untilMs) {
        issued++;
        const body = bodies[next++ % bodies.length]!;
        const s = performance.now();
        const code = await call(body);
        if (!record) continue;
        lat.push(performance.now() - s);
        if (code === 0) ok++;
        else codes[code] = (codes[code] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: o.streams }, worker));
    return { lat, codes, ok, secs: (performance.now() - t0) / 1000 };
  };

  return { run, close: () => session.close() };
}

/** Runs the generator in a child process (its own event loop and core) and returns its result. */
export function spawnGrpcLoad(o: GrpcLoadOptions): Promise<GrpcLoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawnTs(repoPath("./grpc-load.ts"), [JSON.stringify(o)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout!.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr!.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.once("error", reject);
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as GrpcLoadResult);
      else reject(new Error(`grpc-load exited with ${code}: ${err.trim() || out.trim()}`));
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const opts = JSON.parse(process.argv[2] ?? "{}") as GrpcLoadOptions;
  runGrpcLoad(opts).then(
    (r) => {
      process.stdout.write(JSON.stringify(r) + "\n");
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(String(err) + "\n");
      process.exit(1);
    },
  );
}
