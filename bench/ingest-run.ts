/**
 * A measured ingest into the app in the step's process (steps 2 and 4): publish first, start the
 * app, wait until it has caught up; CPU, threads, GC and the machine's load over the run.
 */
import { join } from "node:path";
import { pino } from "pino";
import { startApp } from "../bin/app.js";
import { applyHeapSettings } from "../bin/heap-growth.js";
import { trainingsDone } from "../actors/sources/index.js";
import { ensureEventsStream, EVENTS_STREAM } from "../connectors/nats/streams.js";
import type { OutgoingMessage } from "../connectors/nats/publisher.js";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { watchAllocation } from "./gc-alloc.js";
import { sampleHeap } from "./heap-sample.js";
import { libuvPoolTids, sampleThreads, threadRunSeconds, threadShares } from "./thread-time.js";
import {
  appConfig,
  connect,
  parseCpuSeconds,
  publishAll,
  waitCaughtUp,
  watchStageFailures,
} from "./in-process.js";
import { env } from "./options.js";
import {
  machineBusyPct,
  machineCpuTicks,
  procCpuSeconds,
  selfCpuSeconds,
  threadCpuList,
  threadSchedSeconds,
} from "./util.js";

/** The heap growth of the last app started here (one app per step). */
let heapGrowth: ReturnType<typeof applyHeapSettings> | undefined;

/**
 * Publishes `msgs`, starts the app on the same server and waits until it has caught up. `msgs`
 * is emptied once published: the step's process runs the app, and 200,000 messages held beside
 * it were ~53 MB of its heap and 200,000 array buffers that every full GC of the app's run
 * marked again (a deployed app holds no publisher's messages).
 */
export async function ingest(nats: EmbeddedNats, dir: string, msgs: OutgoingMessage[]) {
  const nc = await connect(nats);
  await ensureEventsStream(await nc.jetstreamManager());
  const pubRate = await publishAll(nc, msgs);
  msgs.length = 0;
  const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state.last_seq;
  await nc.close();

  const dataDir = join(dir, "app");
  const rssBefore = process.memoryUsage().rss;
  const cpu0 = selfCpuSeconds();
  const als0 = trainingsDone();
  const natsCpu0 = await procCpuSeconds(nats.pid);
  const machine0 = await machineCpuTicks();
  // Which threads are the libuv pool (found by giving it work, before anything is measured).
  const pool = await libuvPoolTids();
  const mainThread0 = await threadSchedSeconds(process.pid);
  const threads0 = await threadCpuList(process.pid);
  const tids0 = await threadRunSeconds(process.pid);
  const sampler = sampleThreads(process.pid);
  const alloc = watchAllocation();
  // BENCH_HEAP_PROFILE=file: where the main isolate's allocations come from, over the same span;
  // with BENCH_HEAP_PROFILE_OLD=1 only what survived scavenges (promoted) is counted.
  const heap = env.BENCH_HEAP_PROFILE
    ? await sampleHeap(env.BENCH_HEAP_PROFILE, undefined, {
        youngDeaths: env.BENCH_HEAP_PROFILE_OLD !== "1",
      })
    : undefined;
  const t0 = performance.now();
  // BENCH_APP_LOG=file: the app's warnings and errors go there (a failed step says why).
  const appLog = env.BENCH_APP_LOG
    ? pino({ level: "warn" }, pino.destination(env.BENCH_APP_LOG))
    : pino({ level: "silent" });
  const cfg = appConfig(nats, dataDir);
  const app = await startApp(cfg, appLog);
  // As bin/main.ts does once the app has started: the heap grows as it would under `npm start`.
  heapGrowth?.stop();
  heapGrowth = applyHeapSettings(cfg);
  const stageFailures = watchStageFailures(app);
  const startedMs = performance.now() - t0;
  const { doneAt, timedOut, parsed } = await waitCaughtUp(app, lastSeq, t0);
  const secs = (doneAt - t0) / 1000;
  // CPU is read at detection time (SETTLE_MS later): the idle tail adds a little. The parse
  // process (PARSE_PROCESS=1) started with the app: all of its CPU time is the ingest's.
  const parseCpu = await parseCpuSeconds(app);
  const cpu = selfCpuSeconds() - cpu0 + parseCpu;
  const gc = alloc.stop();
  await heap?.stop();
  // The main threads (where every stage of the process and gRPC run): on a CPU and waiting for
  // one, as shares of the run. The child's since it started (with the app).
  const mainThread1 = await threadSchedSeconds(process.pid);
  const childPid = app.parseProcess?.pid();
  const childThread =
    childPid === undefined ? undefined : await threadSchedSeconds(childPid, childPid);
  // Every other thread of this process and its children (nats-server, the parse process): CPU
  // seconds during the run, the larger ones.
  const threadKinds = threadShares(tids0, await sampler.stop(), pool);
  const threads: Record<string, number> = {};
  for (const [name, s] of Object.entries(await threadCpuList(process.pid))) {
    const d = s - (threads0[name] ?? 0);
    if (d >= 0.05) threads[name] = Math.round(d * 100) / 100;
  }
  // ALS trainings that finished meanwhile (worker threads of this process, their CPU in `cpu`).
  const als = trainingsDone();
  const natsCpu = (await procCpuSeconds(nats.pid)) - natsCpu0;
  const machine1 = await machineCpuTicks();
  const wall = (performance.now() - t0) / 1000;
  return {
    app,
    stageFailures,
    dataDir,
    lastSeq,
    parsed,
    pubRate,
    secs,
    startedMs,
    timedOut,
    rssBefore,
    gc,
    appCpuPct: (cpu / wall) * 100,
    parseCpuPct: (parseCpu / wall) * 100,
    parseCpuSecs: parseCpu,
    appCpuSecs: cpu,
    alsTrainings: als.trainings - als0.trainings,
    alsCpuSecs: als.cpuSeconds - als0.cpuSeconds,
    natsCpuPct: (natsCpu / wall) * 100,
    natsCpuSecs: natsCpu,
    /** CPU seconds of this process's other threads by kind (bench/thread-time.ts). */
    threadKinds,
    threads,
    mainThreadSecs: mainThread1.run - mainThread0.run,
    /** The main thread's seconds runnable but waiting for a CPU. */
    mainThreadWaitSecs: mainThread1.wait - mainThread0.wait,
    /** The parse process's main thread since it started (with the app), seconds. */
    ...(childThread ? { childThreadSecs: childThread } : {}),
    mainThreadPct: {
      run: ((mainThread1.run - mainThread0.run) / wall) * 100,
      wait: ((mainThread1.wait - mainThread0.wait) / wall) * 100,
    },
    ...(childThread
      ? {
          childThreadPct: {
            run: (childThread.run / wall) * 100,
            wait: (childThread.wait / wall) * 100,
          },
        }
      : {}),
    /** Share of the whole machine (every core) busy during the ingest, any process. */
    machineBusyPct: machineBusyPct(machine0, machine1),
  };
}
