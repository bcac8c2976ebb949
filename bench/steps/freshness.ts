/** Step 3: freshness, publish → visible in GetRecommendations, under a stepped background load. */
import { writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { startApp } from "../../bin/app.js";
import { createRecoClient } from "../../connectors/grpc/client.js";
import { EVENTS_STREAM } from "../../connectors/nats/streams.js";
import { createJetStreamPublisher, type OutgoingMessage } from "../../connectors/nats/publisher.js";
import { DEFAULT_GENERATOR, createGenerator, rng32, toMessage, uuidFrom } from "../generator.js";
import { traceProbeHops } from "../hop-trace.js";
import { appConfig, connect, parseCpuSeconds, parsePosition } from "../in-process.js";
import {
  FRESH_RATES,
  FRESH_SECONDS,
  FRESH_TARGET_MS,
  FRESH_TARGET_RATE,
  FRESH_TRACE,
  FULL_RUN,
  PARTITIONS,
  POLL_MS,
  PROBE_EVERY_MS,
} from "../options.js";
import { lineChartSvg } from "../plot.js";
import { verdict, type Report } from "../report.js";
import { longestNote } from "../stage-time.js";
import {
  fmtInt,
  fmtMs,
  machineBusyPct,
  machineCpuTicks,
  percentile,
  scrape,
  selfCpuSeconds,
  showsAsOwn,
  sleep,
  withFreshNats,
} from "../util.js";

interface FreshnessPoint {
  rate: number;
  achieved: number;
  probes: number;
  seen: number[];
  missed: number;
  backlog: number;
  cpuPct: number;
  /** Share of the whole machine (every core) busy meanwhile, any process. */
  machineBusyPct: number;
}

export async function stepFreshness(report: Report): Promise<void> {
  await withFreshNats("fresh", async (nats, dir) => {
    const app = await startApp(appConfig(nats, join(dir, "app")), pino({ level: "silent" }));
    const nc = await connect(nats);
    const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    const pub = createJetStreamPublisher(nc, { window: 1024 });
    const trace = FRESH_TRACE ? traceProbeHops(nc) : undefined;
    const probeMs = new Map<number, number>();
    const gen = createGenerator({ ...DEFAULT_GENERATOR, seed: 7, start: Date.now() });
    const ids = rng32(99);
    let stop = false;
    // The load: `rate` events/s from `tRate`, counted in `sentAtRate` (the rate changes per point).
    let rate = FRESH_RATES[0]!;
    let tRate = performance.now();
    let sentAtRate = 0;
    let skippedAtRate = 0;
    const pubFailures = { n: 0, first: "" };
    const publish = (m: OutgoingMessage) =>
      pub.publish(m.subject, m.data).catch((err: unknown) => {
        pubFailures.n++;
        pubFailures.first ||= err instanceof Error ? err.message : String(err);
      });
    const load = (async () => {
      while (!stop) {
        const due = Math.floor(((performance.now() - tRate) / 1000) * rate);
        // Never queue without bound (as bench/load.ts): a run at load average ~25 grew this
        // process to 6.4 GB of queued publishes at 10k/s. What is skipped shows as a lower rate.
        for (; sentAtRate + skippedAtRate < due; sentAtRate++) {
          if (pub.pending() >= 8192) {
            skippedAtRate = due - sentAtRate;
            break;
          }
          void publish(toMessage(gen.next(Date.now())));
        }
        await sleep(5);
      }
    })();

    const probe = async (k: number): Promise<number | undefined> => {
      const item = `probe-item-${k}`;
      const category = `probecat${k}.x`;
      const user = `bench-probe-${k}`;
      const base = { item, category, brand: "probe", price: 1 };
      const ts = Date.now();
      const t0 = performance.now();
      trace?.start(k, t0);
      // Another user buys the item (it becomes popular in its category) and the probe user
      // views it (the category becomes the probe user's interest).
      const buy = toMessage({
        ...base,
        type: "purchase",
        ts,
        user: `bench-buyer-${k}`,
        id: uuidFrom(ids),
      });
      const view = toMessage({ ...base, type: "view", ts, user, id: uuidFrom(ids) });
      void publish(buy);
      void publish(view);
      while (performance.now() - t0 < 10_000) {
        await sleep(POLL_MS);
        const res = await client
          .getRecommendations(user, 10, { deadlineMs: 2000 })
          .catch(() => undefined);
        if (res && showsAsOwn(res.items, item)) {
          probeMs.set(k, performance.now() - t0);
          return performance.now() - t0;
        }
      }
      probeMs.set(k, performance.now() - t0);
      return undefined;
    };

    const points: FreshnessPoint[] = [];
    const traceNotes: string[] = [];
    const holdNotes: string[] = [];
    let k = 0;
    try {
      for (const r of FRESH_RATES) {
        rate = r;
        tRate = performance.now();
        sentAtRate = 0;
        skippedAtRate = 0;
        report.log(
          `3. freshness at ${fmtInt(r)} events/s: 2 s warm-up, probes every ${PROBE_EVERY_MS} ms for ${FRESH_SECONDS} s`,
        );
        await sleep(2000);
        await probe(k++); // warm-up probe, not counted
        const firstProbe = k;
        const holds0 = await scrape(app.metricsPort);
        const resends0 = trace?.resends().count ?? 0;
        const cpu0 = selfCpuSeconds() + (await parseCpuSeconds(app));
        const machine0 = await machineCpuTicks();
        const tProbe = performance.now();
        const probes: Promise<number | undefined>[] = [];
        while (performance.now() - tProbe < FRESH_SECONDS * 1000) {
          probes.push(probe(k++));
          await sleep(PROBE_EVERY_MS);
        }
        const achieved = sentAtRate / ((performance.now() - tRate) / 1000);
        const cpu1 = selfCpuSeconds() + (await parseCpuSeconds(app));
        const cpuPct = ((cpu1 - cpu0) / ((performance.now() - tProbe) / 1000)) * 100;
        const machine1 = await machineCpuTicks();
        const busyPct = machineBusyPct(machine0, machine1);
        const jsm = await nc.jetstreamManager();
        const lastSeq = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
        const backlog = Math.max(0, lastSeq - parsePosition(app));
        const results = await Promise.all(probes);
        const seen = results.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
        if (trace) {
          // Where the slowest probes over the target spent their time (hop-trace.ts).
          const slow = [...probeMs]
            .filter(([pk, ms]) => pk >= firstProbe && ms > FRESH_TARGET_MS)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 3);
          const rs = trace.resends();
          traceNotes.push(
            `at ${fmtInt(r)} events/s: ${slow.length ? slow.map(([pk, ms]) => `probe ${pk}: ${trace.timeline(pk, ms)}`).join("; ") : `no probe over ${FRESH_TARGET_MS} ms`}; ` +
              `hop messages re-sent (one Nats-Msg-Id published twice): ${fmtInt(rs.count - resends0)}` +
              (rs.count > resends0
                ? ` (largest gap so far ${fmtInt(rs.maxGapMs)} ms, ${rs.subject})`
                : ""),
          );
        }
        holdNotes.push(
          `at ${fmtInt(r)} events/s: ${longestNote(await scrape(app.metricsPort), holds0)}`,
        );
        points.push({
          rate: r,
          achieved,
          probes: results.length,
          seen,
          missed: results.length - seen.length,
          backlog,
          cpuPct,
          machineBusyPct: busyPct,
        });
      }
      stop = true;
      await load;
      trace?.stop();
      if (traceNotes.length)
        report.note(
          "Step 3, per-hop timestamps (first time a hop subject carried the probe's item, from a " +
            "core NATS subscription in the step process; ms after the probe's publish): " +
            traceNotes.join(". "),
        );
      report.note(
        "Step 3, the longest a stage held its process's event loop with one message while the " +
          "probes ran (reco_stage_busy_longest_seconds, the worst partition, stages whose longest " +
          "grew at that rate; wall time, preemption included): " +
          holdNotes.join("; ") +
          ".",
      );
      // Failures were counted by publish(); close() would only repeat the first one.
      await pub.close().catch(() => undefined);
      if (pubFailures.n > 0) {
        report.fail();
        report.note(
          `Step 3: ${pubFailures.n} publishes failed (first: ${pubFailures.first}): the process ` +
            `was too busy to handle PubAcks in time.`,
        );
      }
      for (const pt of points) {
        const p50 = percentile(pt.seen, 50);
        const p99 = percentile(pt.seen, 99);
        const met = pt.missed === 0 && p99 < FRESH_TARGET_MS;
        if (pt.missed > 0) report.fail();
        report.row({
          step: "3",
          figure: `freshness p50 / p99 at ${fmtInt(pt.rate)} events/s, ${pt.probes} probes`,
          value: `${fmtMs(p50)} / ${fmtMs(p99)} ms`,
          baseline:
            (pt.missed ? `${pt.missed} probes not visible within 10 s; ` : "") +
            `load ${fmtInt(pt.achieved)}/s, CPU ${pt.cpuPct.toFixed(0)}% (machine ${pt.machineBusyPct.toFixed(0)}% busy), backlog ${fmtInt(pt.backlog)}`,
          target:
            pt.rate === FRESH_TARGET_RATE
              ? `p99 < ${FRESH_TARGET_MS} ms at 10k/s (${verdict(met)})`
              : `(p99 < ${FRESH_TARGET_MS} ms: ${met ? "yes" : "no"})`,
        });
      }
      if (!points.some((pt) => pt.rate === FRESH_TARGET_RATE))
        report.note(
          `Step 3: no point at ${fmtInt(FRESH_TARGET_RATE)} events/s, the target's rate.`,
        );
      const plotName = FULL_RUN ? "freshness.svg" : "freshness-partial.svg";
      const plotFile = fileURLToPath(new URL(`../${plotName}`, import.meta.url));
      await writeFile(
        plotFile,
        lineChartSvg({
          title: "Freshness: publish → visible in GetRecommendations",
          xLabel: "background ingest rate (events/s)",
          yLabel: "ms (log scale)",
          series: [
            {
              name: "p50",
              color: "#1f77b4",
              points: points.map((pt) => [
                pt.rate,
                pt.seen.length ? percentile(pt.seen, 50) : undefined,
              ]),
            },
            {
              name: "p99",
              color: "#d62728",
              points: points.map((pt) => [
                pt.rate,
                pt.seen.length ? percentile(pt.seen, 99) : undefined,
              ]),
            },
          ],
          reference: { y: FRESH_TARGET_MS, label: `target: p99 < ${FRESH_TARGET_MS} ms at 10k/s` },
          caption:
            `npm run bench, ${new Date().toISOString().slice(0, 16)}Z, ${PARTITIONS} partitions, ` +
            `${availableParallelism()} cores, load average ${loadavg()[0]!.toFixed(1)}; one app, rates ` +
            `run in this order, ~${Math.round((FRESH_SECONDS * 1000) / PROBE_EVERY_MS)} probes each, ` +
            `${POLL_MS} ms polling.`,
        }),
      );
      report.note(
        `Step 3: one app under a background load that steps through ${FRESH_RATES.map(fmtInt).join(", ")} ` +
          `events/s (current event times); at each rate, after a 2 s warm-up, a probe every ` +
          `${PROBE_EVERY_MS} ms for ${FRESH_SECONDS} s publishes a purchase of a new item in a new ` +
          `category by another user and a view of it by a fresh probe user, then polls ` +
          `GetRecommendations over gRPC every ${POLL_MS} ms until the item is listed as ` +
          `PERSONALIZED; the time is from publish to the answer that shows it (so it includes up ` +
          `to ${POLL_MS} ms of polling granularity and one round trip). With under 100 probes, p99 ` +
          `is the maximum. CPU is the step process's (app, load generator and probes; with ` +
          `PARSE_PROCESS=1 plus the app's parse process) over the ` +
          `probing; backlog is how far parse was behind the EVENTS stream when probing ended. ` +
          `Plot: bench/${plotName}.`,
      );
    } finally {
      stop = true;
      client.close();
      await nc.close().catch(() => undefined);
      await app.stop();
    }
  });
}
