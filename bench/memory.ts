/**
 * Step 7, memory: the app as `npm start` runs it (its own process), fed events of a known number
 * of active users (every user exactly the same number of events), at several scales, and once
 * with the same users and twice the events. RSS of the app's process against its idle start,
 * LevelDB state directory after snapshots, and the state keys each stage holds.
 */
import { join } from "node:path";
import { connectNats } from "../connectors/nats/connection.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { epochNow, spawnApp, waitCaughtUp, waitSnapshots } from "./app-process.js";
import { DEFAULT_GENERATOR, streamMessages } from "./generator.js";
import { ratio, verdict, type Report } from "./report.js";
import { dirSize, fmtInt, fmtMiB, sleep, sum, withFreshNats } from "./util.js";

export interface MemoryOptions {
  /** Active users of each point. */
  users: number[];
  /** Also run this many users with two events each (the "2× events" point); 0: skip. */
  doubleAt: number;
  partitions: number;
  ingestTimeoutMs: number;
  publishWindow: number;
}

interface Point {
  users: number;
  events: number;
  rssIdle: number;
  rss: number;
  heapUsed: number;
  levelIdle: number;
  level: number;
  keys: Map<string, number>;
  ingestSecs: number;
  lagGaugeStuck: boolean;
}

/** "2× events at the same users" grows memory by at most this factor to count as not growing. */
const SAME_MEMORY = 1.25;

async function measure(o: MemoryOptions, users: number, perUser: number, report: Report) {
  return withFreshNats("memory", async (nats, dir): Promise<Point> => {
    const dataDir = join(dir, "app");
    const app = spawnApp({
      natsUrl: nats.url,
      dataDir,
      grpcPort: await freePort(),
      metricsPort: await freePort(),
      partitions: o.partitions,
    });
    const nc = await connectNats({ servers: nats.url, name: "reco-bench" });
    try {
      await app.ready();
      await sleep(2000);
      const rssIdle = await app.rss();
      const levelIdle = await dirSize(join(dataDir, "state"));
      const events = users * perUser;
      report.log(`7. memory: ${fmtInt(users)} users × ${perUser} events`);
      const pub = createJetStreamPublisher(nc, { window: o.publishWindow });
      const t0 = epochNow();
      await pub.publishMany(
        streamMessages(events, {
          ...DEFAULT_GENERATOR,
          users,
          userDist: "cycle",
          start: Date.now() - DEFAULT_GENERATOR.spanMs,
        }),
      );
      await pub.close();
      const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state
        .last_seq;
      const caught = await waitCaughtUp(app, lastSeq, { timeoutMs: o.ingestTimeoutMs });
      if (caught.timedOut)
        throw new Error(`7: ${events} events not ingested in time (parse at ${caught.parsed})`);
      await waitSnapshots(app, 2);
      const samples = await app.metrics();
      const keys = new Map<string, number>();
      for (const m of samples)
        if (m.name === "reco_stage_state_keys") {
          const stage = m.labels.stage ?? "?";
          keys.set(stage, (keys.get(stage) ?? 0) + m.value);
        }
      return {
        users,
        events,
        rssIdle,
        rss: await app.rss(),
        heapUsed: sum(samples, "nodejs_heap_size_used_bytes"),
        levelIdle,
        level: await dirSize(join(dataDir, "state")),
        keys,
        ingestSecs: (caught.doneAt - t0) / 1000,
        lagGaugeStuck: caught.lagGaugeStuck,
      };
    } finally {
      await nc.close().catch(() => undefined);
      await app.stop();
    }
  });
}

export async function stepMemory(report: Report, o: MemoryOptions): Promise<void> {
  const points: Point[] = [];
  let single: Point | undefined;
  let double: Point | undefined;
  for (const users of o.users) {
    const p = await measure(o, users, 1, report);
    points.push(p);
    if (users === o.doubleAt) single = p;
  }
  if (o.doubleAt > 0) {
    single ??= await measure(o, o.doubleAt, 1, report);
    double = await measure(o, o.doubleAt, 2, report);
  }
  const perUser = (bytes: number, users: number) => `${fmtInt(bytes / users)} B/user`;
  const totalKeys = (p: Point) => [...p.keys.values()].reduce((a, b) => a + b, 0);
  for (const p of points) {
    const rssDelta = p.rss - p.rssIdle;
    report.row({
      step: "7",
      figure: `memory at ${fmtInt(p.users)} active users (${fmtInt(p.events)} events): RSS Δ`,
      value: `${fmtMiB(rssDelta)} (${perUser(rssDelta, p.users)})`,
      baseline: `LevelDB ${fmtMiB(p.level)} (${perUser(p.level, p.users)}); ${fmtInt(totalKeys(p))} state keys`,
      target: "report bytes per active user",
    });
  }
  if (single && double) {
    const rssRatio = (double.rss - double.rssIdle) / (single.rss - single.rssIdle);
    const levelRatio = double.level / single.level;
    const ok = rssRatio <= SAME_MEMORY && levelRatio <= SAME_MEMORY;
    report.row({
      step: "7",
      figure: `same ${fmtInt(double.users)} users, 2× events (${fmtInt(double.events)}): RSS Δ / LevelDB`,
      value: `${fmtMiB(double.rss - double.rssIdle)} / ${fmtMiB(double.level)}`,
      baseline: `${fmtMiB(single.rss - single.rssIdle)} / ${fmtMiB(single.level)} at 1×; keys ×${(totalKeys(double) / totalKeys(single)).toFixed(2)}`,
      ratio: `${ratio(double.rss - double.rssIdle, single.rss - single.rssIdle)} / ${ratio(double.level, single.level)}`,
      target: `grows with keys, not events: ≤ ${SAME_MEMORY}× (${verdict(ok)})`,
    });
  }
  const all = [...points, ...(double && !points.includes(double) ? [double] : [])];
  const stages = [...new Set(all.flatMap((p) => [...p.keys.keys()]))].sort();
  report.note(
    `Step 7: for each point a fresh nats-server and a fresh app as \`npm start\` runs it (own ` +
      `process, default settings, ${o.partitions} partitions); events generated with ` +
      `userDist "cycle" (event k goes to user k mod N, so exactly N active users with the same ` +
      `number of events each), spread over 2 h of event time ending now, Zipf items. RSS Δ is the ` +
      `app process's resident set (/proc) after ingesting and two more snapshots of every stage, ` +
      `less its RSS when idle after start (${all.map((p) => fmtMiB(p.rssIdle)).join(", ")}); ` +
      `it includes garbage V8 has not returned and is a high-water mark more than a live-set ` +
      `figure (heap used then: ${all.map((p) => fmtMiB(p.heapUsed)).join(", ")}). LevelDB is the ` +
      `state directory after those snapshots (not compacted). State keys by stage ` +
      `(reco_stage_state_keys), per point: ` +
      all
        .map(
          (p) =>
            `${fmtInt(p.users)}×${p.events / p.users}: ` +
            stages.map((s) => `${s} ${fmtInt(p.keys.get(s) ?? 0)}`).join(", "),
        )
        .join("; ") +
      `. Ingest times (publish start → last position move): ` +
      `${all.map((p) => `${p.ingestSecs.toFixed(1)} s${p.lagGaugeStuck ? " (a consumer-lag gauge stayed above 0 with positions still)" : ""}`).join(", ")}.`,
  );
}
