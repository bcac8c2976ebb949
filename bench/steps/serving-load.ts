/**
 * Step 4b: right after step 4, in the same process and app, the many-user generator at 64
 * streams while a separate process publishes a steady load; the echo in a process of its own is
 * the machine's ceiling. Its rows and note.
 */
import type { ChildProcess } from "node:child_process";
import { toBinary } from "@bufbuild/protobuf";
import { EVENTS_STREAM } from "../../connectors/nats/streams.js";
import type { EmbeddedNats } from "../../connectors/nats/embedded-server.js";
import {
  GetRecommendationsResponseSchema,
  type GetRecommendationsResponse,
} from "../../proto/gen/reco/v1/reco_pb.js";
import { nextMessage, repoPath, spawnTs } from "../child.js";
import { connect } from "../in-process.js";
import { startLoad } from "../load.js";
import { delayMs, PROM_LOOP_RESOLUTION_MS } from "../loop-delay.js";
import { ROUNDS, SERVE_LOAD_RATE, SERVE_LOAD_SECONDS, SERVE_SPLIT, STEPS } from "../options.js";
import { ratio, verdict, type Report } from "../report.js";
import { longestNote } from "../stage-time.js";
import { fmtInt, fmtMs, median, scrape, sleep } from "../util.js";
import type { ServedApp } from "./serving-app.js";
import { medians, type Runners, type Served, type Target } from "./serving-runners.js";

export interface UnderLoad {
  achieved: number;
  backlog: number;
  skipped: number;
}

export interface LoadRounds {
  underLoad?: UnderLoad;
  /** The parse process's event-loop delay during each app round, ms. */
  parseLoops: { p99: number; max: number }[];
  /** The load process's event-loop delay over all rounds, ms. */
  publisherLoop: { p99: number; max: number };
}

export async function serveUnderLoad(
  report: Report,
  o: {
    nats: EmbeddedNats;
    app: ServedApp;
    run: Runners["run"];
    res: Record<string, Served[]>;
    targets: Record<Target, string>;
    path: string;
    /** The app's answer for u0, which the echo in a process of its own answers to every call. */
    real: GetRecommendationsResponse;
    /** Keeps the echo's process for the step to stop. */
    setOwnEcho(child: ChildProcess): void;
  },
): Promise<LoadRounds> {
  const { nats, app, run, res, targets, path, real } = o;
  let underLoad: UnderLoad | undefined;
  /**
   * The parse process's event-loop delay (PARSE_PROCESS=1) since its metrics were last
   * collected (prom-client's histogram restarts at each collect, sampled every 10 ms), ms.
   */
  const parseLoop = async () => {
    const ms = (await app.parseProcess?.childMetrics()) ?? [];
    // BENCH_SERVE_PROCESS=1: the ingest child's gauges, averaged with its parse child's.
    // prom-client's lag gauges include its 10 ms sampling interval (bench/loop-delay.ts).
    const v = (name: string) =>
      delayMs(
        (ms.find((m) => m.name === name)?.values[0]?.value ?? NaN) * 1000,
        PROM_LOOP_RESOLUTION_MS,
      );
    return {
      p99: v("nodejs_eventloop_lag_p99_seconds"),
      max: v("nodejs_eventloop_lag_max_seconds"),
    };
  };
  const parseLoops: { p99: number; max: number }[] = [];
  let publisherLoop = { p99: NaN, max: NaN };
  if (STEPS.has("4b")) {
    // The ceiling: the same echo in a process of its own, idle first, then beside the app's
    // ingest in every round.
    const ownEcho = spawnTs(repoPath("echo-process.ts"), [
      Buffer.from(toBinary(GetRecommendationsResponseSchema, real)).toString("base64"),
    ]);
    o.setOwnEcho(ownEcho);
    const ownPort = await nextMessage(ownEcho, (m) =>
      typeof m === "object" && m !== null && "port" in m ? Number(m.port) : undefined,
    );
    targets.own = `http://127.0.0.1:${ownPort}${path}`;
    await run("own", 64, 3000, "node"); // warm-up, every grpc-status read
    res["own-64"]!.push(await run("own", 64, { seconds: SERVE_LOAD_SECONDS }));
    report.log(
      `4b. background ingest at ${fmtInt(SERVE_LOAD_RATE)} events/s (current event times)`,
    );
    const load = await startLoad(nats.url, SERVE_LOAD_RATE);
    const holds0 = await scrape(app.metricsPort);
    try {
      await sleep(3000);
      load.setRate(SERVE_LOAD_RATE); // restarts its counts: the rate during the rounds
      for (let round = 1; round <= ROUNDS; round++) {
        report.log(
          `4b. round ${round}/${ROUNDS}: -m 64 for ${SERVE_LOAD_SECONDS} s, echo then app, under load`,
        );
        res["echo-64-load"]!.push(await run("echo", 64, { seconds: SERVE_LOAD_SECONDS }));
        res["own-64-load"]!.push(await run("own", 64, { seconds: SERVE_LOAD_SECONDS }));
        await parseLoop(); // restarts the parse process's histogram
        res["app-64-load"]!.push(await run("app", 64, { seconds: SERVE_LOAD_SECONDS }));
        parseLoops.push(await parseLoop());
      }
      const ls = await load.stats();
      publisherLoop = { p99: ls.loopP99Ms, max: ls.loopMaxMs };
      const nc = await connect(nats);
      const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state
        .last_seq;
      await nc.close();
      const parsed = await app.parsed();
      underLoad = {
        achieved: ls.rate,
        backlog: Math.max(0, lastSeq - parsed),
        skipped: ls.skipped,
      };
      if (ls.failed > 0) {
        report.fail();
        report.note(`Step 4b: ${ls.failed} background publishes failed (${ls.firstError}).`);
      }
      report.note(
        `Step 4b, the longest a stage held its process's event loop with one message during ` +
          `the ingest (reco_stage_busy_longest_seconds, the worst partition; wall time, ` +
          `preemption included): ${longestNote(await scrape(app.metricsPort), holds0)}.`,
      );
    } finally {
      await load.stop();
    }
  }
  return { ...(underLoad ? { underLoad } : {}), parseLoops, publisherLoop };
}

/** Step 4b's rows and note (`res` has its rounds and step 4's idle echo, the baseline). */
export function loadRows(
  report: Report,
  app: ServedApp,
  res: Record<string, Served[]>,
  rounds: LoadRounds,
): void {
  const { underLoad, parseLoops, publisherLoop } = rounds;
  if (!underLoad) return;
  const { med, rps, p99, p50, loop } = medians(res);
  const a = "app-64-load";
  report.row({
    step: "4b",
    figure: `GetRecommendations req/s, 64 streams, during ${fmtInt(SERVE_LOAD_RATE)} events/s ingest`,
    value: `${fmtInt(rps(a))} req/s`,
    baseline: `${fmtInt(rps("echo-64"))} req/s echo (idle, as in 4)`,
    ratio: ratio(rps(a), rps("echo-64")),
    target: `≥ 0.50× (${verdict(rps(a) / rps("echo-64") >= 0.5)})`,
  });
  report.row({
    step: "4b",
    figure: "  p50 / p99 latency, 64 streams, during ingest",
    value: `${fmtMs(p50(a))} / ${fmtMs(p99(a))} ms`,
    baseline: `${fmtMs(p50("echo-64"))} / ${fmtMs(p99("echo-64"))} ms echo (idle)`,
    ratio: ratio(p99(a), p99("echo-64")),
    target: `p99 < 25 ms (${verdict(p99(a) < 25)})`,
  });
  report.row({
    step: "4b",
    figure: "  event-loop delay p99 / max of the app's process, during ingest",
    value: loop(a),
    baseline: `${loop("echo-64-load")} while the echo was measured`,
  });
  const pct = (x: number) => `${fmtInt(x * 100)}%`;
  /** A run's serving thread: CPU per request; share of the round on a CPU / waiting for one. */
  const thread = (k: string) =>
    `${fmtInt(med(k, (x) => x.serverMainCpuUsPerReq))} µs; ` +
    `${pct(med(k, (x) => x.mainRunShare))} / ${pct(med(k, (x) => x.mainWaitShare))}`;
  /** A run's req/s and p50 / p99. */
  const served = (k: string) => `${fmtInt(rps(k))} req/s, ${fmtMs(p50(k))} / ${fmtMs(p99(k))} ms`;
  report.row({
    step: "4b",
    figure:
      "  this process's main thread during ingest: CPU per request; share of the round on a CPU / waiting for one",
    value: thread(a),
    baseline:
      `echo during ingest ${thread("echo-64-load")}` +
      (SERVE_SPLIT ? "" : " (it runs the stages too)"),
  });
  const parseMed = (f: (x: { p99: number; max: number }) => number) =>
    fmtMs(median(parseLoops.map(f)));
  report.row({
    step: "4b",
    figure: "  event-loop delay p99 / max of the other processes, during ingest",
    value:
      (app.parseProcess
        ? `${SERVE_SPLIT ? "ingest + parse (mean of the two)" : "parse"} ${parseMed((x) => x.p99)} / ${parseMed((x) => x.max)} ms; `
        : "parse in the app's process; ") +
      `publisher ${fmtMs(publisherLoop.p99)} / ${fmtMs(publisherLoop.max)} ms; ` +
      `load generator ${fmtMs(med(a, (x) => x.clientLoopP99Ms))} / ${fmtMs(med(a, (x) => x.clientLoopMaxMs))} ms`,
    baseline: "parse: during the app rounds; publisher: all rounds",
  });
  report.row({
    step: "4b",
    figure: "  echo in the same process during the same ingest: req/s, p50 / p99",
    value: served("echo-64-load"),
    baseline: "app / echo, both during ingest",
    ratio: ratio(rps(a), rps("echo-64-load")),
  });
  const own = "own-64-load";
  report.row({
    step: "4b",
    figure:
      "  echo in a process of its own during the same ingest (the machine's ceiling): req/s, p50 / p99",
    value: served(own),
    baseline: `${served("own-64")} idle (before the ingest)`,
    ratio: ratio(rps(own), rps("echo-64")),
    target: `${verdict(rps(own) / rps("echo-64") >= 0.5 && p99(own) < 25)} by an echo`,
  });
  report.row({
    step: "4b",
    figure:
      "  that echo's main thread during ingest: CPU per request; share of the round on a CPU / waiting for one",
    value: thread(own),
    baseline: `idle ${thread("own-64")}`,
  });
  report.row({
    step: "4b",
    figure: "  ingest achieved during the rounds / parse backlog at the end",
    value: `${fmtInt(underLoad.achieved)} events/s / ${fmtInt(underLoad.backlog)}`,
    baseline: `${fmtInt(SERVE_LOAD_RATE)} events/s asked`,
  });
  report.note(
    `Step 4b: after step 4, in the same process and app, a separate process publishes ` +
      `${fmtInt(SERVE_LOAD_RATE)} events/s with current event times (Zipf over the same 20k ` +
      `users); after 3 s, ${ROUNDS} rounds of the many-user generator at -m 64 for ` +
      `${SERVE_LOAD_SECONDS} s each, echo then app, medians shown. The ratio is to the idle ` +
      `echo of step 4 (DESIGN's baseline); the echo server measured during the ingest shares ` +
      `the process and its event loop with the ingesting app, so app / echo-during-ingest ` +
      `isolates the serving path. Achieved ingest is what JetStream acked during the rounds` +
      `${underLoad.skipped ? ` (${fmtInt(underLoad.skipped)} events skipped: the publisher fell behind)` : ""}; ` +
      `the backlog is how far parse was behind the EVENTS stream when they ended. The main ` +
      `thread's row: its CPU time over a round per request (in one process it runs the ` +
      `stages too), and its time on a CPU and runnable but waiting for one (schedstat) as ` +
      `shares of the round: waiting is what other processes (ingest, the generator, anything ` +
      `else on the machine) took from the thread that serves.`,
  );
}
