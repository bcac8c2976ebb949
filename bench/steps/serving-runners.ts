/**
 * Step 4's two load generators against a target (the echo in this process, the app, the echo in
 * a process of its own): h2load with one user's body, and bench/grpc-load.ts with many users'.
 * Each run also reads the server's CPU, its main thread, nats-server's CPU and the event loop.
 */
import { join } from "node:path";
import { spawnGrpcLoad } from "../grpc-load.js";
import { runH2load } from "../h2load.js";
import { describeFailures } from "../in-process.js";
import { watchGc, watchLoopDelay } from "../loop-delay.js";
import { GEN_CLIENT } from "../options.js";
import {
  fmtInt,
  fmtMs,
  median,
  procCpuSeconds,
  selfCpuSeconds,
  threadCpuSeconds,
  threadSchedSeconds,
} from "../util.js";

export type Target = "echo" | "app" | "own";

export interface RunnerContext {
  natsPid: number;
  /** The gRPC method's URL at each target ("" for `own` until its process runs). */
  targets: Record<Target, string>;
  /** One prebuilt request (u0), for h2load. */
  bodyFile: string;
  /** Every user's prebuilt request, for the many-user generator. */
  bodiesFile: string;
  tmp: string;
  stageFailures: { id: string; why: string }[];
  /** The pid of the echo in a process of its own (step 4b), once started. */
  ownEchoPid(): number | undefined;
}

export function createRunners(ctx: RunnerContext) {
  const { targets, bodyFile, bodiesFile, tmp } = ctx;
  const r = { stageFailures: ctx.stageFailures };
  const nats = { pid: ctx.natsPid };
  // What the app's grpc_requests_total must have counted (a range: a run for a duration
  // ends with requests in flight, which the server may or may not have answered).
  const appCalls = { min: 0, max: 0 };
  /** The event-loop delay of this process (the app's main one) during `work`, ms. */
  const withLoopDelay = async <T extends object>(work: () => Promise<T>) => {
    const loop = watchLoopDelay(1);
    const gc = watchGc();
    try {
      const r = await work();
      const d = loop.read();
      return { ...r, loopP99Ms: d.p99Ms, loopMaxMs: d.maxMs, gc: gc.stop() };
    } finally {
      loop.stop();
      gc.stop();
    }
  };
  /** h2load, one user (u0) in every request: the figure of earlier runs. */
  const runOne = async (t: "echo" | "app", streams: number, load: number | { seconds: number }) => {
    const res = await runH2load({
      url: targets[t],
      bodyFile,
      ...(typeof load === "number" ? { requests: load } : { durationS: load.seconds }),
      streams,
      logFile: join(tmp, `${t}-${streams}.log`),
    });
    const requests = typeof load === "number" ? load : res.requests;
    if (res.succeeded !== requests || res.logged200 !== requests || requests === 0)
      throw new Error(
        `h2load against ${t}: ${res.succeeded}/${requests} succeeded, ` +
          `${res.logged200} with status 200\n${res.raw}`,
      );
    if (t === "app") {
      appCalls.min += res.requests;
      appCalls.max += res.started;
    }
    return res;
  };
  /** The many-user generator (bench/grpc-load.ts): every call's grpc-status is read. */
  const run = (
    t: "echo" | "app" | "own",
    streams: number,
    load: number | { seconds: number },
    client: "raw" | "node" = GEN_CLIENT,
  ) =>
    withLoopDelay(async () => {
      // The server's process: this one, or the echo's own (its CPU and main thread).
      const pid = t === "own" ? ctx.ownEchoPid()! : process.pid;
      const serverCpu = () => (t === "own" ? procCpuSeconds(pid) : selfCpuSeconds());
      const cpu0 = await serverCpu();
      const main0 = await threadCpuSeconds(pid);
      const nats0 = await procCpuSeconds(nats.pid);
      const sched0 = await threadSchedSeconds(pid);
      const wall0 = performance.now();
      const res = await spawnGrpcLoad({
        url: targets[t],
        bodiesFile,
        streams,
        ...(typeof load === "number" ? { requests: load } : { durationS: load.seconds }),
        client,
      });
      const cpu = (await serverCpu()) - cpu0;
      const main = (await threadCpuSeconds(pid)) - main0;
      const natsCpu = (await procCpuSeconds(nats.pid)) - nats0;
      const sched = await threadSchedSeconds(pid);
      const wallS = (performance.now() - wall0) / 1000;
      if (res.ok !== res.requests || res.requests === 0)
        throw new Error(
          `grpc-load against ${t}: ${res.ok}/${res.requests} OK, codes ${JSON.stringify(res.codes)}` +
            (res.messages && Object.keys(res.messages).length > 0
              ? ` (${JSON.stringify(res.messages)})`
              : "") +
            (r.stageFailures.length > 0
              ? `; stage failures since the app started: ${describeFailures(r.stageFailures)}`
              : ""),
        );
      if (t === "app") {
        appCalls.min += res.requests;
        appCalls.max += res.requests;
      }
      return {
        ...res,
        serverCpuUsPerReq: (cpu / res.requests) * 1e6,
        // Where a run's server CPU went: a figure off by 40% once (0.68x at 64a46c3, all
        // answers from the memo) must say whether the handler or something beside it cost.
        serverMainCpuUsPerReq: (main / res.requests) * 1e6,
        natsCpuUsPerReq: (natsCpu / res.requests) * 1e6,
        // The main thread's share of the run on a CPU and runnable but waiting for one.
        mainRunShare: (sched.run - sched0.run) / wallS,
        mainWaitShare: (sched.wait - sched0.wait) / wallS,
      };
    });
  return { run, runOne, appCalls };
}

export type Runners = ReturnType<typeof createRunners>;
/** One run of the many-user generator, with the server's figures. */
export type Served = Awaited<ReturnType<Runners["run"]>>;

/** Medians over the rounds of each run kind ("app-64", "echo-4", ...). */
export function medians(res: Record<string, Served[]>) {
  const med = (k: string, f: (x: Served) => number) => median(res[k]!.map(f));
  return {
    med,
    rps: (k: string) => med(k, (x) => x.reqPerSec),
    p99: (k: string) => med(k, (x) => x.p99Ms),
    p50: (k: string) => med(k, (x) => x.p50Ms),
    cpu: (k: string) => med(k, (x) => x.serverCpuUsPerReq),
    loop: (k: string) =>
      `${fmtMs(med(k, (x) => x.loopP99Ms))} / ${fmtMs(med(k, (x) => x.loopMaxMs))} ms`,
    client: (k: string) => fmtInt(med(k, (x) => x.clientCpuUsPerReq)),
  };
}
