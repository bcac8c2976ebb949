/** Step 4's rows and notes: the idle figures of the app against the echo, and how they were made. */
import { toBinary } from "@bufbuild/protobuf";
import {
  GetRecommendationsResponseSchema,
  type GetRecommendationsResponse,
} from "../../proto/gen/reco/v1/reco_pb.js";
import type { H2loadResult } from "../h2load.js";
import { GEN_CLIENT, H2_REQUESTS, QUIET_MAX_MS, ROUNDS, SERVE_SPLIT } from "../options.js";
import type { waitAppQuiet } from "../quiet.js";
import { ratio, TARGETS, verdict, type Report } from "../report.js";
import { fmtInt, fmtMs, median } from "../util.js";
import { medians, type Served } from "./serving-runners.js";

/** The blend memo's counts at one moment (reco_recommender, reco_blend_replica). */
export interface MemoCounts {
  hits: number;
  misses: number;
  aged: number;
}

/** What step 4 measured and counted, for its rows and notes. */
export interface ServingFacts {
  /** Step 4 itself ran (not only 4b, which needs its echo baseline). */
  idle: boolean;
  /** The many-user generator's rounds by run kind ("app-64", ...). */
  res: Record<string, Served[]>;
  /** h2load's rounds with u0 in every request. */
  one: Record<string, H2loadResult[]>;
  /** Snapshot keys the idle app wrote during the rounds, by stage. */
  idleWrites: { stage: string; keys: number; writes: number }[];
  events: number;
  n: number;
  askUsers: number;
  unknownCount: number;
  knownUsers: number;
  user: string;
  real: GetRecommendationsResponse;
  personal: number;
  m4Requests: number;
  okDelta: number;
  allDelta: number;
  expected: string;
  quiet: Awaited<ReturnType<typeof waitAppQuiet>>;
  memoNote: (a: MemoCounts, b: MemoCounts) => string;
  memo0: MemoCounts;
  memo1: MemoCounts;
  memo2: MemoCounts;
  underLoad: boolean;
  fromBlend: number;
  fromReplica: number;
  fromFallback: number;
}

export function servingRows(report: Report, f: ServingFacts): void {
  const { idle, res, one, idleWrites, n, unknownCount, user, real, personal, m4Requests } = f;
  const { okDelta, allDelta, expected, quiet, memoNote, memo0, memo1, memo2, underLoad } = f;
  const { fromBlend, fromReplica, fromFallback } = f;
  const { med, rps, p99, p50, cpu, loop, client } = medians(res);
  if (idle) {
    report.row({
      step: "4",
      figure: "GetRecommendations req/s, 64 streams, many users",
      value: `${fmtInt(rps("app-64"))} req/s`,
      baseline: `${fmtInt(rps("echo-64"))} req/s echo`,
      ratio: ratio(rps("app-64"), rps("echo-64")),
      target: `≥ ${TARGETS.servingShareOfEcho.toFixed(2)}× (${verdict(rps("app-64") / rps("echo-64") >= TARGETS.servingShareOfEcho)})`,
    });
    report.row({
      step: "4",
      figure: "  p50 / p99 latency, 64 streams",
      value: `${fmtMs(p50("app-64"))} / ${fmtMs(p99("app-64"))} ms`,
      baseline: `${fmtMs(p50("echo-64"))} / ${fmtMs(p99("echo-64"))} ms echo`,
      ratio: ratio(p99("app-64"), p99("echo-64")),
      target: `p99 ≤ ${TARGETS.servingP99OfEcho}× (${verdict(p99("app-64") / p99("echo-64") <= TARGETS.servingP99OfEcho)})`,
    });
    report.row({
      step: "4",
      figure: "  server CPU per request, 64 streams",
      value: `${fmtInt(cpu("app-64"))} µs`,
      baseline: `${fmtInt(cpu("echo-64"))} µs echo`,
      ratio: ratio(cpu("app-64"), cpu("echo-64")),
    });
    report.row({
      step: "4",
      figure: "  event-loop delay p99 / max of the app's process, 64 streams",
      value: loop("app-64"),
      baseline: `${loop("echo-64")} echo (same process)`,
    });
    report.row({
      step: "4",
      figure: "GetRecommendations p50 / p99, 4 streams",
      value: `${fmtMs(p50("app-4"))} / ${fmtMs(p99("app-4"))} ms`,
      baseline: `${fmtMs(p50("echo-4"))} / ${fmtMs(p99("echo-4"))} ms echo`,
      ratio: ratio(p99("app-4"), p99("echo-4")),
      target: `p99 < 5 ms (${verdict(p99("app-4") < 5)})`,
    });
    report.row({
      step: "4",
      figure: "  the load generator's own event-loop delay p99 / max, 4 streams",
      value: `${fmtMs(med("app-4", (x) => x.clientLoopP99Ms))} / ${fmtMs(med("app-4", (x) => x.clientLoopMaxMs))} ms`,
      baseline: `${fmtMs(med("echo-4", (x) => x.clientLoopP99Ms))} / ${fmtMs(med("echo-4", (x) => x.clientLoopMaxMs))} ms against the echo`,
    });
    report.row({
      step: "4",
      figure: "  server's event-loop delay p99 / max, 4 streams",
      value: loop("app-4"),
      baseline: `${loop("echo-4")} echo (same process)`,
    });
    report.row({
      step: "4",
      figure: "  req/s, 4 streams",
      value: `${fmtInt(rps("app-4"))} req/s`,
      baseline: `${fmtInt(rps("echo-4"))} req/s echo`,
      ratio: ratio(rps("app-4"), rps("echo-4")),
    });
    const oneMed = (k: string, f: (x: H2loadResult) => number) => median(one[k]!.map(f));
    report.row({
      step: "4",
      figure: "  h2load, one user (u0) in every request, 64 streams: req/s, p99",
      value: `${fmtInt(oneMed("app-64", (x) => x.reqPerSec))} req/s, ${fmtMs(oneMed("app-64", (x) => x.p99Ms))} ms`,
      baseline: `${fmtInt(oneMed("echo-64", (x) => x.reqPerSec))} req/s, ${fmtMs(oneMed("echo-64", (x) => x.p99Ms))} ms echo`,
      ratio: ratio(
        oneMed("app-64", (x) => x.reqPerSec),
        oneMed("echo-64", (x) => x.reqPerSec),
      ),
    });
    report.row({
      step: "4",
      figure: "  h2load, one user (u0) in every request, 4 streams: p50 / p99",
      value: `${fmtMs(oneMed("app-4", (x) => x.p50Ms))} / ${fmtMs(oneMed("app-4", (x) => x.p99Ms))} ms`,
      baseline: `${fmtMs(oneMed("echo-4", (x) => x.p50Ms))} / ${fmtMs(oneMed("echo-4", (x) => x.p99Ms))} ms echo`,
      ratio: ratio(
        oneMed("app-4", (x) => x.p99Ms),
        oneMed("echo-4", (x) => x.p99Ms),
      ),
    });
  }
  if (idle) {
    // Which side a tail came from, round by round: the server's loop, the generator's, or
    // neither (the machine's run queue).
    const at = (k: string, i: number) => {
      const x = res[k]![i]!;
      return (
        `${k.split("-")[0]} ${fmtMs(x.p99Ms)} (${fmtMs(x.loopP99Ms)}; ` +
        `${fmtInt(x.gc.count)} GC, ${fmtInt(x.gc.minor)} minor, ${fmtMs(x.gc.totalMs)} in all, ` +
        `max ${fmtMs(x.gc.maxMs)}; ` +
        `${fmtMs(x.clientLoopP99Ms)})`
      );
    };
    report.note(
      `Step 4: snapshot keys the app wrote during the rounds (idle: no events), by stage: ` +
        (idleWrites.length === 0
          ? "none"
          : idleWrites
              .map((x) => `${x.stage} ${fmtInt(x.keys)} in ${fmtInt(x.writes)} snapshots`)
              .join(", ")) +
        ".",
    );
    const cpuAt = (k: string, i: number) => {
      const x = res[k]![i]!;
      return (
        `${k.split("-")[0]} ${fmtInt(x.reqPerSec)} req/s, ${fmtInt(x.serverCpuUsPerReq)} µs ` +
        `(main thread ${fmtInt(x.serverMainCpuUsPerReq)}, nats-server ` +
        `${fmtInt(x.natsCpuUsPerReq)}; ${fmtInt(x.gc.count)} GC, ${fmtMs(x.gc.totalMs)} ms)`
      );
    };
    report.note(
      `Step 4 at -m 64, each round: req/s and the server process's CPU per request (of it ` +
        `the main thread's, where gRPC, the stages and GC pauses run; the rest is its other ` +
        `threads: V8's GC helpers, the libuv pool, LevelDB's compaction, the ALS worker), ` +
        `nats-server's CPU per request beside it, the process's garbage collections: ` +
        res["app-64"]!.map(
          (_, i) => `round ${i + 1}: ${cpuAt("echo-64", i)}, ${cpuAt("app-64", i)}`,
        ).join("; ") +
        ".",
    );
    report.note(
      `Step 4 at -m 4, each round: latency p99 ms (the server's event-loop delay p99; its ` +
        `garbage collections during the run (perf_hooks), how many were young-generation ` +
        `scavenges, their pauses in all and the longest; the generator's event-loop delay p99): ` +
        res["app-4"]!.map((_, i) => `round ${i + 1}: ${at("echo-4", i)}, ${at("app-4", i)}`).join(
          "; ",
        ) +
        ".",
    );
  }
  report.note(
    `Step 4: ${fmtInt(f.events)} events ingested into a fresh app first; requests ask ` +
      `GetRecommendations(n=${n}) for ${fmtInt(f.askUsers)} users in turn: ` +
      `${fmtInt(f.askUsers - unknownCount)} of the ${fmtInt(f.knownUsers)} users of those ` +
      `events (shuffled, seeded) and ${fmtInt(unknownCount)} never seen, each once in a warm-up ` +
      `first. Load: bench/grpc-load.ts in a child process (one connection, -m concurrent ` +
      `calls, each posting the next user's prebuilt frame; ` +
      (GEN_CLIENT === "raw"
        ? `its raw HTTP/2 client, bench/h2-raw.ts, writes prebuilt HEADERS + DATA frames and ` +
          `tells answers from errors by their frames; the warm-up asks through node:http2 ` +
          `and reads every grpc-status`
        : `node:http2, every grpc-status read`) +
      `; it costs ${client("echo-64")} µs of its own CPU per call at -m 64` +
      `${idle ? ` and ${client("echo-4")} µs at -m 4` : ""} against the echo, taken from the 2 cores the server ` +
      `shares, for echo and app alike). The echo ` +
      `server is grpc-js with the same service definition answering the app's prebuilt answer ` +
      `for ${user} (${real.items.length} items, ${personal} personalised, ` +
      `${toBinary(GetRecommendationsResponseSchema, real).length} bytes) to every call. ` +
      `${fmtInt(H2_REQUESTS)} calls at -m 64 and ${fmtInt(m4Requests)} at -m 4; ${ROUNDS} rounds ` +
      `alternating echo and app, medians shown` +
      `${idle ? "" : " (this run: only the echo at -m 64, the baseline of 4b)"}. The h2load rows ` +
      `post GetRecommendations(user_id="${user}") every time (the figure of earlier runs; ` +
      `per-user caches answer it; after the warm-up the many-user calls are answered from ` +
      `the blend memo too, see below). At -m 4 a call's latency includes the generator's ` +
      `own stalls (its event-loop delay row): where that p99 is near 5 ms the many-user ` +
      `row measures the generator as much as the server, and h2load at -m 4 (same calls ` +
      `to echo and app) is the server's figure. Over steps 4 and 4b the app's grpc_requests_total counted ` +
      `${fmtInt(okDelta)} OK of ${fmtInt(allDelta)} (expected ${expected}). Server CPU per ` +
      `request is this process's CPU time over the run divided by requests (the app's idle ` +
      `pipeline included); event-loop delay is perf_hooks' monitorEventLoopDelay in this ` +
      `process (the app's main one, where gRPC is served) during each run, less its sampling ` +
      `interval (bench/loop-delay.ts: an idle loop reads 0). Before the ` +
      `warm-up the bench waited ${fmtInt(quiet.waitedMs / 1000)} s for the app to go quiet ` +
      `(the source stages caught up, the idle ALS training done: bench/quiet.ts)` +
      `${quiet.quiet ? "" : ` and went on after ${fmtInt(QUIET_MAX_MS / 1000)} s with it still busy (CPU ${fmtInt(quiet.cpuShare * 100)}% of a core, model at ${fmtInt(quiet.modelAt)} of ${fmtInt(quiet.fed)} events)`}. Blended answers ` +
      `after the warm-up (reco_recommender memo_hits / memo_misses): ${memoNote(memo0, memo1)}` +
      `${underLoad ? `; during 4b ${memoNote(memo1, memo2)}` : ""}.` +
      (SERVE_SPLIT && underLoad
        ? ` BENCH_SERVE_PROCESS=1: during 4b the serving process answered ${fmtInt(fromBlend!)} ` +
          `blended from its replica of the blend's sources, ${fmtInt(fromReplica!)} with the ` +
          `design ranking and ${fmtInt(fromFallback!)} with the design ranking as a fallback ` +
          `(the blend's replica not received yet).`
        : ""),
  );
}
