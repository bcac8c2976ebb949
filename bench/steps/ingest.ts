/** Step 2: end-to-end ingest of the same events through the app, from app start to caught up. */
import { availableParallelism } from "node:os";
import type { OutgoingMessage } from "../../connectors/nats/publisher.js";
import { describeFailures } from "../in-process.js";
import { ingest } from "../ingest-run.js";
import { breakdownRows } from "./ingest-breakdown.js";
import {
  INGEST_TARGET_RATE,
  INGEST_TARGET_RATIO,
  INGEST_TIMEOUT_MS,
  PARTITIONS,
  SETTLE_MS,
} from "../options.js";
import { ratio, verdict, type Report } from "../report.js";
import { busyNote } from "../stage-time.js";
import {
  fmtInt,
  fmtMiB,
  procRssBytes,
  scrape,
  stateDirBytes,
  sum,
  withFreshNats,
} from "../util.js";

export async function stepIngest(
  report: Report,
  msgs: OutgoingMessage[],
  consumeRate: number,
): Promise<void> {
  // `ingest` lets the messages go once published: what is needed of them is taken first.
  const events = msgs.length;
  const payloadBytes = msgs.reduce((a, m) => a + m.data.length, 0);
  await withFreshNats("ingest", async (nats, dir) => {
    report.log(`2. publishing ${fmtInt(events)} events, then starting the app`);
    const r = await ingest(nats, dir, msgs);
    try {
      // On a timeout, only what parse got through counts (downstream stages lag further).
      const rate = (r.timedOut ? r.parsed : events) / r.secs;
      report.log(
        `2. ${r.timedOut ? "TIMED OUT after" : "caught up in"} ${r.secs.toFixed(1)} s ` +
          `(app start ${r.startedMs.toFixed(0)} ms)`,
      );
      const samples = await scrape(r.app.metricsPort);
      report.note(await busyNote(r.app, samples, events));
      const accepted = sum(samples, "reco_events_accepted_total");
      const joinIn = sum(samples, "reco_stage_messages_in_total", { stage: "popularity-join" });
      report.row({
        step: "2",
        figure: `end-to-end ingest, ${PARTITIONS} partitions${
          r.timedOut
            ? ` (TIMED OUT at ${INGEST_TIMEOUT_MS / 1000} s, parse at ${fmtInt(r.parsed)})`
            : ""
        }`,
        value: `${fmtInt(rate)} events/s`,
        baseline: `${fmtInt(consumeRate)} msgs/s raw consume`,
        ratio: ratio(rate, consumeRate),
        target: `≥ ${fmtInt(INGEST_TARGET_RATE)} events/s and ≥ ${INGEST_TARGET_RATIO.toFixed(2)}× (${verdict(
          !r.timedOut && rate >= INGEST_TARGET_RATE && rate / consumeRate >= INGEST_TARGET_RATIO,
        )})`,
      });
      if (r.timedOut) {
        report.fail();
        // Where it stood: each instance with messages still pending on its consumer or waiting
        // in its mailbox (positions that stopped moving with these above 0 are a stall).
        const behind = samples
          .filter(
            (m) =>
              (m.name === "reco_stage_consumer_lag" || m.name === "reco_stage_mailbox_depth") &&
              m.value !== 0,
          )
          .map(
            (m) =>
              `${m.labels.stage}/${m.labels.partition} ${m.name.endsWith("lag") ? "pending" : "in its mailbox"} ${fmtInt(m.value)}`,
          );
        report.note(
          `Step 2 timed out. Behind at the end, by the gauges: ${behind.join(", ") || "none"}.`,
        );
      }
      report.row({
        step: "2",
        figure: `  CPU during ingest (app ${r.app.parseProcess ? "processes, main + parse" : "process"} / nats-server)`,
        value: r.app.parseProcess
          ? `${r.appCpuPct.toFixed(0)}% (${(r.appCpuPct - r.parseCpuPct).toFixed(0)}% + ${r.parseCpuPct.toFixed(0)}%) / ${r.natsCpuPct.toFixed(0)}%`
          : `${r.appCpuPct.toFixed(0)}% / ${r.natsCpuPct.toFixed(0)}%`,
        baseline: `machine ${r.machineBusyPct.toFixed(0)}% busy (all ${availableParallelism()} cores, any process)`,
      });
      report.row({
        step: "2",
        figure: "  main threads during ingest: on a CPU / runnable, waiting for one (schedstat)",
        value:
          `main process ${r.mainThreadPct.run.toFixed(0)}% / ${r.mainThreadPct.wait.toFixed(0)}%` +
          (r.childThreadPct
            ? `; ${r.app.parseProcess ? "parse" : "child"} process ${r.childThreadPct.run.toFixed(0)}% / ${r.childThreadPct.wait.toFixed(0)}%`
            : ""),
        baseline: "100% = one core for the whole run: a main thread near it is the limit",
      });
      report.note(
        `Step 2, CPU seconds of the step process's main thread ${r.mainThreadSecs.toFixed(2)} s ` +
          `(the app's stages in this process, gRPC), and of its other threads and child processes ` +
          `during the run (bench/util.ts threadCpuList: V8 helpers, the libuv pool, LevelDB, ALS ` +
          `workers; nats-server and the app's child are "child <pid>"): ` +
          Object.entries(r.threads)
            .map(([k, v]) => `${k} ${v.toFixed(2)}`)
            .join(", ") +
          ".",
      );
      report.row({
        step: "2",
        figure: "  app CPU per event (less sensitive to other load than events/s)",
        value: `${((r.appCpuSecs / events) * 1e6).toFixed(1)} µs`,
      });
      // Step 2's generated events span 2 h of event time: ALS trains at each hour boundary
      // within the run, where a live stream trains once an hour (RETRAIN_INTERVAL_MS).
      if (r.alsCpuSecs > 0)
        report.row({
          step: "2",
          figure: `  of which ALS trainings (worker threads, ${r.alsTrainings} finished in the run)`,
          value: `${((r.alsCpuSecs / events) * 1e6).toFixed(1)} µs`,
          baseline: `${(((r.appCpuSecs - r.alsCpuSecs) / events) * 1e6).toFixed(1)} µs per event without them`,
        });
      report.row({
        step: "2",
        figure: "  main process: bytes allocated per event, GCs (node:v8 GCProfiler, main isolate)",
        value: `${fmtInt(r.gc.allocatedBytes / events)} B (promoted ${fmtInt(r.gc.promotedBytes / events)} B)`,
        baseline:
          `${fmtInt(r.gc.scavenges)} scavenges, ${fmtInt(r.gc.markCompacts)} mark-compacts, ` +
          `${((r.gc.gcMs * 1000) / events).toFixed(1)} µs of GC pauses per event (wall)`,
      });
      await breakdownRows(report, r, samples, events);
      if (r.stageFailures.length > 0) {
        // The figure above is of a disturbed run: restarts reload snapshots and replay.
        report.row({
          step: "2",
          figure: "  stage failures during the ingest (each restarted)",
          value: describeFailures(r.stageFailures),
        });
        report.fail();
      }
      report.row({
        step: "2",
        figure: "  events accepted by parse",
        value: fmtInt(accepted),
        baseline: `${fmtInt(events)} published`,
      });
      if (accepted !== events) {
        report.fail();
        report.note(`Step 2: parse accepted ${accepted} of ${events} events.`);
      }
      report.note(
        `Step 2: ${fmtInt(r.lastSeq)} events were published first (${fmtInt(r.pubRate)} msgs/s), ` +
          `then the app was started; the time runs from startApp() (${r.startedMs.toFixed(0)} ms of ` +
          `it is start-up) until parse reached the stream's last sequence, no stage input moved for ` +
          `${SETTLE_MS} ms and all consumer-lag gauges read 0. popularity-join consumed ` +
          `${fmtInt(joinIn)} hop messages. Why ingest (and with it freshness at 10k/s) misses ` +
          `its target, measured: bench/README.md, "What limits the missed targets".`,
      );
      const rss = process.memoryUsage();
      await r.app.pipeline.snapshotAll();
      const level = await stateDirBytes(r.dataDir);
      const parsePid = r.app.parseProcess?.pid();
      const parseRss =
        parsePid === undefined ? "" : ` + parse process ${fmtMiB(await procRssBytes(parsePid))}`;
      report.row({
        step: "2",
        figure: "  RSS after ingest (Δ from before app start)",
        value: `${fmtMiB(rss.rss)} (+${fmtMiB(rss.rss - r.rssBefore)})${parseRss}`,
        baseline: `heap used ${fmtMiB(rss.heapUsed)}`,
      });
      report.row({
        step: "2",
        figure: "  LevelDB state dir after snapshotAll()",
        value: fmtMiB(level),
      });
      report.note(
        "RSS is of the step's own process, which runs the app in-process and held the " +
          "generated events (~" +
          fmtMiB(payloadBytes) +
          " of payloads plus objects) until they were published, before the app started; the Δ " +
          "is the better guide. Every step runs in a fresh " +
          "process and a fresh nats-server.",
      );
    } finally {
      await r.app.stop();
    }
  });
}
