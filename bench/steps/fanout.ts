/**
 * Step 5, StreamTrending fan-out: the app in this process under a steady ingest load (a separate
 * process), many StreamTrending subscribers in another process on several channels. Every update
 * the trending hub emits is timed here when it is emitted and there when each subscriber gets it.
 */
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { pino } from "pino";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { startApp } from "../../bin/app.js";
import type { AppConfig } from "../../bin/config.js";
import type { TrendingSnapshot } from "../../actors/contract/index.js";
import { createRecoClient } from "../../connectors/grpc/client.js";
import type { EmbeddedNats } from "../../connectors/nats/embedded-server.js";
import type { TrendingUpdate } from "../../proto/gen/reco/v1/reco_pb.js";
import { epochNow } from "../app-process.js";
import { nextMessage, repoPath, spawnTs, stopChild } from "../child.js";
import { startLoad } from "../load.js";
import { verdict, type Report } from "../report.js";
import {
  fmtInt,
  fmtMs,
  percentile,
  procCpuSeconds,
  scrape,
  selfCpuSeconds,
  sleep,
  sum,
  withFreshNats,
} from "../util.js";

export interface FanoutOptions {
  subscribers: number;
  /** gRPC channels (connections) the subscribers are spread over. */
  channels: number;
  /** How long updates are counted once every subscriber is in. */
  seconds: number;
  /** Background ingest, events/s. */
  rate: number;
  /** TRENDING_TRIGGER of the app: at most one non-final update per this many ms. */
  triggerMs: number;
  /** Top-k asked by every subscriber. */
  k: number;
  config: (nats: EmbeddedNats, dataDir: string, extra: Record<string, string>) => AppConfig;
}

/** DESIGN §8: every subscriber gets every update within 1 s. */
const TARGET_MS = 1000;
/** After the counted period, deliveries may still arrive for this long. */
const GRACE_MS = 3000;

/** What identifies an update on both sides: window, final flag, watermark, top k with scores. */
const identity = (
  windowStart: number,
  final: boolean,
  watermark: number | undefined,
  items: { itemId: string; score: number }[],
) =>
  `${windowStart}|${final ? "F" : "-"}|${watermark ?? "-"}|` +
  items.map((i) => `${i.itemId}:${i.score}`).join(",");

/**
 * Numbers repeated identities (`#0`, `#1`, …) in the order seen: an update is matched to the
 * emit with the same identity and the same occurrence.
 */
function occurrences() {
  const seen = new Map<string, number>();
  return (id: string) => {
    const n = seen.get(id) ?? 0;
    seen.set(id, n + 1);
    return `${id}#${n}`;
  };
}

export async function stepFanout(report: Report, o: FanoutOptions): Promise<void> {
  const { log } = report;
  await withFreshNats("fanout", async (nats, dir) => {
    const app = await startApp(
      o.config(nats, join(dir, "app"), { TRENDING_TRIGGER: String(o.triggerMs) }),
      pino({ level: "silent" }),
    );
    const emits: { key: string; t: number }[] = [];
    const next = occurrences();
    // Subscribed before any gRPC subscriber: the hub's subject calls it first, in the same turn
    // as the server's writers, so its time is the emit.
    const sub = app.pipeline.backend.trending("1h").subscribe((s: TrendingSnapshot) => {
      const t = epochNow();
      const key = identity(
        s.windowStart,
        s.final,
        s.watermark ?? undefined,
        s.items.slice(0, o.k).map((i) => ({ itemId: i.itemId, score: i.score })),
      );
      emits.push({ key: next(key), t });
    });
    const load = await startLoad(nats.url, o.rate);
    let child: ChildProcess | undefined;
    try {
      log(`5. fan-out: waiting for the first trending update under ${fmtInt(o.rate)} events/s`);
      const t0 = Date.now();
      while (emits.length === 0) {
        if (Date.now() - t0 > 60_000) throw new Error("no trending update within 60 s");
        await sleep(100);
      }
      log(
        `5. opening ${fmtInt(o.subscribers)} StreamTrending subscribers on ${o.channels} channels`,
      );
      child = spawnTs(repoPath("./steps/fanout.ts"), [
        "--subscribe",
        JSON.stringify({
          address: `127.0.0.1:${app.grpcPort}`,
          subscribers: o.subscribers,
          channels: o.channels,
          k: o.k,
        }),
      ]);
      const ready = await nextMessage(
        child,
        (m) => ((m as { type?: string }).type === "ready" ? (m as { at: number }) : undefined),
        60_000,
      );
      const dropped0 = sum(await scrape(app.metricsPort), "grpc_trending_dropped_updates_total");
      const cpu0 = selfCpuSeconds();
      const childCpu0 = await procCpuSeconds(child.pid!);
      const tStart = Math.max(ready.at, epochNow());
      log(`5. all subscribed; counting updates for ${o.seconds} s`);
      await sleep(o.seconds * 1000);
      const tEnd = epochNow();
      const cpu = selfCpuSeconds() - cpu0;
      const childCpu = (await procCpuSeconds(child.pid!)) - childCpu0;
      const loadStats = await load.stats();
      await sleep(GRACE_MS);
      child.send({ report: true });
      const got = await nextMessage(
        child,
        (m) =>
          (m as { type?: string }).type === "receipts"
            ? (m as {
                receipts: Record<string, (number | null)[]>;
                errors: number;
                firstError: string;
                received: number;
              })
            : undefined,
        60_000,
      );
      const dropped =
        sum(await scrape(app.metricsPort), "grpc_trending_dropped_updates_total") - dropped0;

      const counted = emits.filter((e) => e.t > tStart && e.t <= tEnd);
      const delays: number[] = [];
      let missing = 0;
      const missingBySubscriber = new Uint32Array(o.subscribers);
      for (const e of counted) {
        const times = got.receipts[e.key];
        for (let i = 0; i < o.subscribers; i++) {
          const r = times?.[i];
          if (r === undefined || r === null) {
            missing++;
            missingBySubscriber[i]!++;
          } else delays.push(r - e.t);
        }
      }
      delays.sort((a, b) => a - b);
      const complete = missingBySubscriber.filter((m) => m === 0).length;
      const max = delays.length ? delays[delays.length - 1]! : NaN;
      const within = delays.filter((d) => d <= TARGET_MS).length;
      const met = counted.length > 0 && missing === 0 && max <= TARGET_MS;
      if (counted.length === 0 || missing > 0 || got.errors > 0) report.fail();
      const wall = (tEnd - tStart) / 1000;
      report.row({
        step: "5",
        figure: `StreamTrending fan-out to ${fmtInt(o.subscribers)} subscribers: p50 / p99 / max delay`,
        value: `${fmtMs(percentile(delays, 50))} / ${fmtMs(percentile(delays, 99))} / ${fmtMs(max)} ms`,
        baseline: `${counted.length} updates × ${fmtInt(o.subscribers)} = ${fmtInt(counted.length * o.subscribers)} deliveries expected`,
        target: `every update within 1 s (${verdict(met)})`,
      });
      report.row({
        step: "5",
        figure: "  deliveries missing / later than 1 s",
        value: `${fmtInt(missing)} / ${fmtInt(delays.length - within)}`,
        baseline: `${fmtInt(complete)} of ${fmtInt(o.subscribers)} subscribers got every update`,
      });
      report.row({
        step: "5",
        figure: "  CPU: app process / subscriber process",
        value: `${((cpu / wall) * 100).toFixed(0)}% / ${((childCpu / wall) * 100).toFixed(0)}%`,
        baseline: `load ${fmtInt(loadStats.rate)} events/s; ${fmtInt(dropped)} updates dropped (latest-wins)`,
      });
      report.note(
        `Step 5: one app in the step process (TRENDING_TRIGGER=${o.triggerMs} ms so that updates ` +
          `come often; the default is 5,000 ms) under ${fmtInt(o.rate)} events/s of background ` +
          `ingest with current event times (a separate process). ${fmtInt(o.subscribers)} ` +
          `StreamTrending(ONE_HOUR, k=${o.k}) calls from one child process over ${o.channels} grpc-js ` +
          `channels (own connections). The delay of an update runs from the trending hub emitting ` +
          `it (an in-process subscriber of the hub, called before the server's writers) to its ` +
          `receipt by each subscriber (both clocks: performance.timeOrigin + now() on one machine). ` +
          `Updates are matched by window, final flag, watermark and the top ${o.k} with scores. ` +
          `Counted: the ${counted.length} updates emitted in ${o.seconds} s once every subscriber ` +
          `had its first update (the hub's replay of the latest), each expected at every ` +
          `subscriber; ${GRACE_MS / 1000} s of grace after. The subscriber process received ` +
          `${fmtInt(got.received)} updates in all, ${got.errors} streams failed` +
          `${got.errors ? ` (first: ${got.firstError})` : ""}. The hub itself evaluates every ` +
          `min(250 ms, TRENDING_TRIGGER) and emits the newest window at most once per trigger; ` +
          `that wait is before the emit and not in these figures.`,
      );
    } finally {
      sub.unsubscribe();
      if (child) await stopChild(child, 2000);
      await load.stop();
      await app.stop();
    }
  });
}

/** Child mode: opens the subscribers, records receipt times, reports them when asked. */
async function runSubscribers(o: {
  address: string;
  subscribers: number;
  channels: number;
  k: number;
}): Promise<void> {
  const clients = Array.from({ length: o.channels }, () =>
    createRecoClient(o.address, { channelOptions: { "grpc.use_local_subchannel_pool": 1 } }),
  );
  const receipts = new Map<string, Float64Array>();
  let first = 0;
  let lastFirst = 0;
  let errors = 0;
  let firstError = "";
  let received = 0;
  const streams = Array.from({ length: o.subscribers }, (_, i) => {
    const stream = clients[i % o.channels]!.streamTrending("1h", o.k);
    const next = occurrences();
    let gotFirst = false;
    void (async () => {
      for await (const u of stream as AsyncIterable<TrendingUpdate>) {
        const t = epochNow();
        received++;
        const key = next(
          identity(
            u.windowStart ? timestampMs(u.windowStart) : NaN,
            u.final,
            u.watermark ? timestampMs(u.watermark) : undefined,
            u.items,
          ),
        );
        let times = receipts.get(key);
        if (!times) receipts.set(key, (times = new Float64Array(o.subscribers).fill(NaN)));
        times[i] = t;
        if (!gotFirst) {
          gotFirst = true;
          lastFirst = Math.max(lastFirst, t);
          if (++first === o.subscribers) process.send?.({ type: "ready", at: lastFirst });
        }
      }
    })().catch((err: unknown) => {
      errors++;
      firstError ||= err instanceof Error ? err.message : String(err);
    });
    return stream;
  });
  process.on("message", (m: { report?: boolean }) => {
    if (!m.report) return;
    const out: Record<string, (number | null)[]> = {};
    for (const [k, times] of receipts)
      out[k] = Array.from(times, (t) => (Number.isNaN(t) ? null : t));
    process.send?.({ type: "receipts", receipts: out, errors, firstError, received });
  });
  const bye = () => {
    for (const s of streams) s.cancel();
    for (const c of clients) c.close();
    process.exit(0);
  };
  process.once("SIGTERM", bye);
  process.once("disconnect", bye);
}

const arg = process.argv.indexOf("--subscribe");
if (arg > 0)
  runSubscribers(
    JSON.parse(process.argv[arg + 1] ?? "{}") as Parameters<typeof runSubscribers>[0],
  ).catch((err: unknown) => {
    console.error("bench subscribers:", err);
    process.exit(1);
  });
