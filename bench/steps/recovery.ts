/**
 * Step 6, recovery: the app as `npm start` runs it (dist/bin/main.js, its own process, NATS
 * outside it) ingests generated events, snapshots, is SIGKILLed and started again; the time runs
 * from the kill until GetRecommendations answers OK with the same content as before the kill.
 * Then the same under a steady ingest load (6b): killed at an arbitrary moment, so the restart
 * replays what its last snapshot did not cover.
 */
import { Source } from "../../proto/gen/reco/v1/reco_pb.js";
import { createRecoClient } from "../../connectors/grpc/client.js";
import { APP_FROM_SOURCES, positions, waitSnapshots } from "../app-process.js";
import { withIngestedApp, type IngestedApp } from "../ingested-app.js";
import { verdict, type Report } from "../report.js";
import { fmtInt, fmtMiB, sleep, stateDirBytes, sum, type PromSample } from "../util.js";
import {
  breakdown,
  content,
  pollUntil,
  POLL_MS,
  probeUsers,
  secs,
  SNAPSHOT_SECS,
  TARGET_MS,
  waitPositions,
  type RecoveryOptions,
} from "./recovery-common.js";
import { recoveryUnderLoad } from "./recovery-load.js";

/** Step 6 on its own: ingests `o.events` events of `o.users` users, then measures. */
export async function stepRecovery(report: Report, o: RecoveryOptions): Promise<void> {
  await withIngestedApp(
    {
      users: o.users,
      perUser: Math.max(1, Math.round(o.events / o.users)),
      partitions: o.partitions,
      ingestTimeoutMs: o.ingestTimeoutMs,
      publishWindow: o.publishWindow,
      log: report.log,
      label: "6. recovery",
    },
    (s) => measureRecovery(report, s, o),
  );
}

/**
 * Step 6 on an app that holds the state of `s.events` events (step 7's largest point when both
 * steps run: one ingest of 1M events instead of two): SIGKILL, restart, time to right answers;
 * then 6b under load.
 */
export async function measureRecovery(
  report: Report,
  s: IngestedApp,
  o: RecoveryOptions,
): Promise<void> {
  const { log } = report;
  let app = s.app;
  if (s.lagGaugeStuck)
    report.note(
      "Step 6: consumer-lag gauges stayed above 0 while every position stood still for 5 s " +
        `after the ingest (${s.lagGaugeStuck}); taken as caught up.`,
    );
  if (o.waitModel) {
    for (const end = Date.now() + 30 * 60_000; ; await sleep(5000)) {
      const m = await app.metrics();
      const point = sum(m, "reco_recommender", { name: "model_point" });
      const training = sum(m, "reco_recommender", { name: "training" });
      log(`6. waiting for a trained model: model point ${fmtInt(point)}, training ${training}`);
      if (point > 0 && training === 0) break;
      if (Date.now() > end) throw new Error("step 6: no trained model within 30 min");
    }
    await waitSnapshots(app, 3);
  }
  const before = await positions(app);
  // Whether a trained ALS model serves at the kill: a restart then reads it back before the
  // blend's first right answers (step 6 is bimodal on it).
  const atKill = await app.metrics();
  const modelPoint = sum(atKill, "reco_recommender", { name: "model_point" });
  const training = sum(atKill, "reco_recommender", { name: "training" });
  const rss = await app.rss();
  const levelBytes = await stateDirBytes(s.dataDir);
  const users = probeUsers(s.users);
  const c = createRecoClient(app.grpcAddress);
  const expected = await Promise.all(users.map((u) => c.getRecommendations(u, 10)));
  c.close();
  const personal = expected[0]!.items.filter((i) => i.source === Source.PERSONALIZED).length;
  const want = expected.map(content);

  log("6. SIGKILL, then start again");
  const killedAt = await app.kill();
  app = s.app = s.spawn();
  const restart = await pollUntil(
    app.grpcAddress,
    users,
    (a) => a.every((r, k) => content(r) === want[k]),
    60_000,
  );
  const { spawnMs, startMs, bindMs, answerMs, readyMs } = await breakdown(
    app,
    killedAt,
    restart.accepted,
  );
  const replayedAt = await waitPositions(app, before, 60_000);
  const totalMs = restart.accepted - killedAt;
  const caughtMs = replayedAt - killedAt;
  // Settled (nothing new came in): input processed since the restart = what was replayed.
  const samples = await app.metrics();
  const parsedSince = sum(samples, "reco_stage_events_in_total", { stage: "parse" });
  const met = Number.isFinite(totalMs) && totalMs <= TARGET_MS;
  if (!Number.isFinite(totalMs)) report.fail();
  report.row({
    step: "6",
    figure: `recovery after SIGKILL, ${fmtInt(s.events)} events of state: kill → right answers`,
    value: Number.isFinite(totalMs)
      ? `${(totalMs / 1000).toFixed(2)} s`
      : `not within 60 s (${restart.lastError})`,
    baseline: `first OK answer ${((restart.firstOk - killedAt) / 1000).toFixed(2)} s`,
    target: `≤ ${TARGET_MS / 1000} s (${verdict(met)})`,
  });
  report.row({
    step: "6",
    figure: APP_FROM_SOURCES
      ? "  of which: process start (node + tsx compile + imports)"
      : "  of which: process start (node + imports of dist/)",
    value: `${(startMs / 1000).toFixed(2)} s`,
    baseline: `spawn ${spawnMs.toFixed(0)} ms after the kill`,
  });
  report.row({
    step: "6",
    figure: "  of which: NATS, serving snapshots (popularity-join), gRPC bind",
    value: secs(bindMs),
    baseline: `LevelDB ${fmtMiB(levelBytes)}`,
  });
  report.row({
    step: "6",
    figure: "  of which: first right answers after the bind",
    value: secs(answerMs),
    baseline: `${fmtInt(parsedSince)} events replayed by parse`,
  });
  const restore = restoreByStage(samples);
  report.row({
    step: "6",
    figure: "  restore of the instances, one at a time: snapshot read / handler built",
    value: RESTORE_FIRST.filter((stage) => restore.has(stage))
      .map((stage) => `${stage} ${restoreSecs(restore.get(stage)!)}`)
      .join(", "),
    baseline: `then the rest: ${[...restore]
      .filter(([stage]) => !RESTORE_FIRST.includes(stage))
      .sort((a, b) => b[1].state + b[1].handler - (a[1].state + a[1].handler))
      .map(([stage, r]) => `${stage} ${restoreSecs(r)}`)
      .join(", ")}`,
  });
  report.row({
    step: "6",
    figure: "  every stage loaded and running (the ready line)",
    value: Number.isFinite(readyMs) ? `${secs(readyMs)} after the kill` : "no",
  });
  report.row({
    step: "6",
    figure: "  every stage back at its position before the kill",
    value: Number.isFinite(caughtMs) ? `${(caughtMs / 1000).toFixed(2)} s after the kill` : "no",
  });
  report.note(
    `Step 6: the app runs as \`npm start\` runs it (${APP_FROM_SOURCES ? "node with tsx's loader, bin/main.ts" : "node on the compiled dist/bin/main.js"}) in its ` +
      `own process, against a nats-server outside it (NATS_URL), with default settings ` +
      `(${o.partitions} partitions, SNAPSHOT_INTERVAL ${SNAPSHOT_SECS} s). ${fmtInt(s.events)} generated events, ` +
      `${fmtInt(s.events / s.users)} for each of ${fmtInt(s.users)} users (when steps 6 and 7 ` +
      `both run, this is the app of step 7's point of that size), were published (${s.publishSecs.toFixed(1)} s) and ingested ` +
      `(caught up ${s.ingestSecs.toFixed(1)} s after publishing began); after two more snapshots of every ` +
      `stage the app (RSS ${fmtMiB(rss)}, LevelDB ${fmtMiB(levelBytes)}; ALS model served: ` +
      `${modelPoint > 0 ? `trained at input point ${fmtInt(modelPoint)}` : "none"}, training ` +
      `${training > 0 ? "running" : "not running"}) was SIGKILLed and ` +
      `started again at once. ${users.length} users (${users.join(", ")}; u0 has ${personal} ` +
      `personalised items) are asked every ${POLL_MS} ms, each attempt on a new gRPC channel, ` +
      `until every answer (items, scores, ranks, sources, top categories) equals the one before ` +
      `the kill (${restart.attempts} attempts). Process start runs from spawn to the app's ` +
      `first log line (written after its modules are loaded); then to its "gRPC server ` +
      `listening" line (NATS connect, LevelDB open, the serving instances' snapshots loaded: ` +
      `popularity-join's profiles, and the popularity table); the rest is the first right ` +
      `answers. The other stages load one after the other once gRPC answers, the blend's ` +
      `sources first (history, covisit, collaborative: until they run, answers are the design ` +
      `ranking's), then the rest (trending, popularity, ...), the user path's chains, the ` +
      `collaborative trainer last; the "ready" line is logged when all of them run.`,
  );

  // ---- 6b: the same under a steady load, killed at an arbitrary moment.
  if (o.loadRate > 0) await recoveryUnderLoad(report, s, o);
}

/**
 * The stages whose instances restore before the first right answers, in their start order
 * (bin/pipeline/units.ts START_TIERS: serving, then the blend's sources).
 */
const RESTORE_FIRST = ["popularity-join", "history", "covisit", "collaborative"];

/** reco_stage_restore_seconds summed over each stage's partitions, by part. */
function restoreByStage(samples: PromSample[]): Map<string, { state: number; handler: number }> {
  const name = "reco_stage_restore_seconds";
  const stages = new Set(samples.filter((x) => x.name === name).map((x) => x.labels.stage!));
  return new Map(
    [...stages].map((stage) => [
      stage,
      {
        state: sum(samples, name, { stage, part: "state" }),
        handler: sum(samples, name, { stage, part: "handler" }),
      },
    ]),
  );
}

const restoreSecs = (r: { state: number; handler: number }) =>
  `${r.state.toFixed(2)} / ${r.handler.toFixed(2)} s`;
