/**
 * Step 4, serving: GetRecommendations of many users against a bare grpc-js echo server, both
 * driven by the same generators, rounds alternating; then step 4b (serving-load.ts) on the same
 * app. Rows and notes: serving-report.ts.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import { createRecoClient } from "../../connectors/grpc/client.js";
import type { OutgoingMessage } from "../../connectors/nats/publisher.js";
import {
  GetRecommendationsRequestSchema,
  Source,
  type GetRecommendationsResponse,
} from "../../proto/gen/reco/v1/reco_pb.js";
import { stopChild } from "../child.js";
import { startEchoServer } from "../echo.js";
import { rng32, userOf } from "../generator.js";
import { grpcFrame, type H2loadResult } from "../h2load.js";
import { ingest } from "../ingest-run.js";
import {
  ANSWER_MAX_AGE_MS,
  H2_REQUESTS,
  QUIET_MAX_MS,
  ROUNDS,
  SERVE_SPLIT,
  SERVE_UNKNOWN_SHARE,
  SERVE_USERS,
  STEPS,
} from "../options.js";
import { waitAppQuiet } from "../quiet.js";
import type { Report } from "../report.js";
import { fmtInt, scrape, sum, withFreshNats } from "../util.js";
import { ingestSplit, servedApp } from "./serving-app.js";
import { loadRows, serveUnderLoad } from "./serving-load.js";
import { servingRows } from "./serving-report.js";
import { createRunners, type Served, type Target } from "./serving-runners.js";

export async function stepServing(report: Report, msgs: OutgoingMessage[]): Promise<void> {
  // The ingest lets the messages go once published: their users are taken first (asked below).
  const events = msgs.length;
  const known = [...new Set(msgs.map((m) => userOf(m.data)).filter((u) => u !== ""))];
  await withFreshNats("serve", async (nats, dir) => {
    report.log(
      `4. serving: ingesting ${fmtInt(events)} events first` +
        (SERVE_SPLIT
          ? " (BENCH_SERVE_PROCESS=1: serving here, the stages in a child at nice)"
          : ""),
    );
    const r = SERVE_SPLIT ? await ingestSplit(nats, dir, msgs) : await ingest(nats, dir, msgs);
    const app = servedApp(r.app);
    const tmp = await mkdtemp(join(tmpdir(), "reco-bench-h2-"));
    const appClient = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    let echo: Awaited<ReturnType<typeof startEchoServer>> | undefined;
    /** Step 4b's echo in a process of its own (bench/echo-process.ts), once started. */
    let ownEcho: ChildProcess | undefined;
    try {
      if (r.timedOut) throw new Error("serving set-up: ingest did not catch up");
      // The most active user (Zipf rank 0): a full personalised answer.
      const user = "u0";
      const n = 10;
      const real: GetRecommendationsResponse = await appClient.getRecommendations(user, n);
      const personal = real.items.filter((i) => i.source === Source.PERSONALIZED).length;
      if (real.items.length === 0) throw new Error(`GetRecommendations(${user}) returned no items`);
      const bodyFile = join(tmp, "body.bin");
      const request = toBinary(
        GetRecommendationsRequestSchema,
        create(GetRecommendationsRequestSchema, { userId: user, n }),
      );
      await writeFile(bodyFile, grpcFrame(request));
      echo = await startEchoServer(real);
      const echoClient = createRecoClient(`127.0.0.1:${echo.port}`);
      const echoed = await echoClient.getRecommendations(user, n);
      echoClient.close();
      if (echoed.items.length !== real.items.length) throw new Error("echo server answer differs");

      // Many distinct users, as a front end asks: every user of the ingested events (shuffled,
      // seeded) and a share never seen. One user asked again and again would be answered from
      // per-user caches and flatter the figures.
      const shuffle = rng32(4);
      for (let x = known.length - 1; x > 0; x--) {
        const y = shuffle() % (x + 1);
        [known[x], known[y]] = [known[y]!, known[x]!];
      }
      const askUsers = known.slice(0, SERVE_USERS);
      const unknownCount = Math.round(askUsers.length * SERVE_UNKNOWN_SHARE);
      for (let x = 0; x < unknownCount; x++)
        askUsers.splice(Math.floor((x * askUsers.length) / unknownCount), 0, `bench-new-${x}`);
      const bodiesFile = join(tmp, "bodies.bin");
      await writeFile(
        bodiesFile,
        Buffer.concat(
          askUsers.map((u) =>
            grpcFrame(
              toBinary(
                GetRecommendationsRequestSchema,
                create(GetRecommendationsRequestSchema, { userId: u, n }),
              ),
            ),
          ),
        ),
      );

      const path = "/reco.v1.RecommendationService/GetRecommendations";
      const targets: Record<Target, string> = {
        echo: `http://127.0.0.1:${echo.port}${path}`,
        app: `http://127.0.0.1:${app.grpcPort}${path}`,
        own: "",
      };
      const grpcOk = async () =>
        sum(await scrape(app.metricsPort), "grpc_requests_total", { code: "OK" });
      const grpcAll = async () => sum(await scrape(app.metricsPort), "grpc_requests_total");
      const { run, runOne, appCalls } = createRunners({
        natsPid: nats.pid,
        targets,
        bodyFile,
        bodiesFile,
        tmp,
        stageFailures: r.stageFailures,
        ownEchoPid: () => ownEcho?.pid,
      });

      // Idle figures of an idle app: not the catch-up of the source stages nor the training an
      // ingest leaves behind (bench/quiet.ts).
      const quiet = await waitAppQuiet({ metricsPort: app.metricsPort, maxMs: QUIET_MAX_MS });
      report.log(
        `4. app ${quiet.quiet ? "quiet" : "still busy"} after ${fmtInt(quiet.waitedMs / 1000)} s ` +
          `(CPU ${fmtInt(quiet.cpuShare * 100)}% of a core, model at ${fmtInt(quiet.modelAt)} of ` +
          `${fmtInt(quiet.fed)} events)`,
      );
      report.log(
        `4. warm-up: ${fmtInt(askUsers.length)} users (${fmtInt(unknownCount)} never seen), once each`,
      );
      // node:http2 reads every answer's grpc-status and message: each user is checked once here
      // (the raw client of the rounds tells answers from errors by their frames only).
      await run("echo", 64, askUsers.length, "node");
      await run("app", 64, askUsers.length, "node");
      await runOne("echo", 64, 3000);
      await runOne("app", 64, 3000);
      appCalls.min = appCalls.max = 0;
      /**
       * The blend memo's counts (reco_recommender memo_hits / memo_misses; split, the serving
       * process's replica answers: reco_blend_replica).
       */
      const memoCounts = async () => {
        const m = await scrape(app.metricsPort);
        const of = (name: string) =>
          sum(m, "reco_recommender", { name }) + sum(m, "reco_blend_replica", { name });
        return { hits: of("memo_hits"), misses: of("memo_misses"), aged: of("memo_aged") };
      };
      /** Snapshot writes of the app so far, by stage: keys written and snapshots taken. */
      const snapshotWrites = async () => {
        const m = await scrape(app.metricsPort);
        const by = new Map<string, { keys: number; writes: number }>();
        for (const x of m) {
          const stage = x.labels.stage;
          if (stage === undefined) continue;
          const isKeys = x.name === "reco_stage_snapshot_keys_total";
          if (!isKeys && x.name !== "reco_stage_snapshot_seconds_count") continue;
          const e = by.get(stage) ?? { keys: 0, writes: 0 };
          if (isKeys) e.keys += x.value;
          else e.writes += x.value;
          by.set(stage, e);
        }
        return by;
      };
      const snaps0 = await snapshotWrites();
      const memo0 = await memoCounts();
      let memo1 = memo0;
      /** BENCH_SERVE_PROCESS=1: where the serving process's answers came from (split-backend.ts). */
      const answerSources = async () => {
        const m = await scrape(app.metricsPort);
        const froms = ["blend", "replica", "replica_fallback"];
        return froms.map((from) => sum(m, "reco_serving_answers_total", { from }));
      };
      let sources1 = await answerSources();
      const ok0 = await grpcOk();
      const all0 = await grpcAll();
      const res: Record<string, Served[]> = {
        "echo-64": [],
        "app-64": [],
        "echo-4": [],
        "app-4": [],
        "echo-64-load": [],
        "app-64-load": [],
        "own-64": [],
        "own-64-load": [],
      };
      const one: Record<string, H2loadResult[]> = {
        "echo-64": [],
        "app-64": [],
        "echo-4": [],
        "app-4": [],
      };
      const idle = STEPS.has("4");
      const m4Requests = Math.max(1000, Math.floor(H2_REQUESTS / 2));
      for (let round = 1; round <= ROUNDS; round++) {
        report.log(
          idle
            ? `4. round ${round}/${ROUNDS}: -m 64 (${H2_REQUESTS} req) and -m 4 (${m4Requests} req), echo then app; h2load with u0 at -m 64`
            : `4. round ${round}/${ROUNDS}: echo at -m 64 (${H2_REQUESTS} req), the baseline of 4b`,
        );
        res["echo-64"]!.push(await run("echo", 64, H2_REQUESTS));
        if (!idle) continue;
        res["app-64"]!.push(await run("app", 64, H2_REQUESTS));
        res["echo-4"]!.push(await run("echo", 4, m4Requests));
        res["app-4"]!.push(await run("app", 4, m4Requests));
        one["echo-64"]!.push(await runOne("echo", 64, H2_REQUESTS));
        one["app-64"]!.push(await runOne("app", 64, H2_REQUESTS));
        one["echo-4"]!.push(await runOne("echo", 4, m4Requests));
        one["app-4"]!.push(await runOne("app", 4, m4Requests));
      }

      memo1 = await memoCounts();
      // What the idle app still wrote during the rounds (each snapshot's batch is prepared on
      // the event loop that serves).
      const snaps1 = await snapshotWrites();
      const idleWrites = [...snaps1]
        .map(([stage, e]) => {
          const b = snaps0.get(stage) ?? { keys: 0, writes: 0 };
          return { stage, keys: e.keys - b.keys, writes: e.writes - b.writes };
        })
        .filter((x) => x.keys > 0)
        .sort((a, b) => b.keys - a.keys);
      sources1 = await answerSources();
      // 4b: the same calls while the app ingests a steady load (from a separate process).
      const rounds = await serveUnderLoad(report, {
        nats,
        app,
        run,
        res,
        targets,
        path,
        real,
        setOwnEcho: (child) => (ownEcho = child),
      });
      const memo2 = await memoCounts();
      const sources2 = await answerSources();
      const [fromBlend, fromReplica, fromFallback] = sources2.map((v, i) => v - sources1[i]!);
      const memoNote = (a: typeof memo0, b: typeof memo0) =>
        `${fmtInt(b.hits - a.hits)} answered from the blend memo, ${fmtInt(b.misses - a.misses)} computed` +
        (ANSWER_MAX_AGE_MS > 0
          ? ` (ANSWER_MAX_AGE_MS=${ANSWER_MAX_AGE_MS}: ${fmtInt(b.aged - a.aged)} of those from the memo served although their data had changed, with their staleness)`
          : "");
      const okDelta = (await grpcOk()) - ok0;
      const allDelta = (await grpcAll()) - all0;
      const expected =
        appCalls.min === appCalls.max
          ? fmtInt(appCalls.min)
          : `${fmtInt(appCalls.min)} to ${fmtInt(appCalls.max)}`;
      if (okDelta < appCalls.min || okDelta > appCalls.max || allDelta !== okDelta) report.fail();
      servingRows(report, {
        idle,
        res,
        one,
        idleWrites,
        events,
        n,
        askUsers: askUsers.length,
        unknownCount,
        knownUsers: known.length,
        user,
        real,
        personal,
        m4Requests,
        okDelta,
        allDelta,
        expected,
        quiet,
        memoNote,
        memo0,
        memo1,
        memo2,
        underLoad: rounds.underLoad !== undefined,
        fromBlend: fromBlend!,
        fromReplica: fromReplica!,
        fromFallback: fromFallback!,
      });
      loadRows(report, app, res, rounds);
    } finally {
      appClient.close();
      await echo?.stop();
      if (ownEcho) await stopChild(ownEcho);
      await app.stop();
      await rm(tmp, { recursive: true, force: true });
    }
  });
}
