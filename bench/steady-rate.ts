/**
 * What the app costs at a steady rate well below what it sustains (bench/README "What limits":
 * "messages, not events"): one app as steps 1-5 run it (this process, its parse process beside
 * it; the app's settings from the environment as there), a publisher in its own process at
 * `RATE` events/s with current event times, and after 3 s a measure over `SECS` seconds of
 *
 * - CPU per event of this process (its main thread and its other threads apart), of the parse
 *   process and of nats-server;
 * - messages per second at nats-server, and stored per second in each stream by subject family
 *   (hops: `RECO_HOPS:reco.parse`, `reco.items`, `reco.pairs`, ...);
 * - each stage's messages in per second and the time it held the event loop, per message and
 *   per event.
 *
 *   RATE=100 SECS=20 npx tsx bench/steady-rate.ts
 *   BATCH_MAX_DELAY_MS=50 RATE=1000 npx tsx bench/steady-rate.ts
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { pino } from "pino";
import { startApp } from "../bin/app.js";
import { freePort, startEmbeddedNats } from "../connectors/nats/embedded-server.js";
import { appConfig, parseCpuSeconds } from "./in-process.js";
import { startLoad } from "./load.js";
import { procCpuSeconds, scrape, sleep, type PromSample } from "./util.js";

const RATE = Number(process.env.RATE ?? 1000);
const SECS = Number(process.env.SECS ?? 20);

/** CPU seconds of each thread of this process: the main thread, and the rest together. */
async function threadsCpu(): Promise<{ main: number; others: number }> {
  let main = 0;
  let others = 0;
  for (const tid of await readdir(`/proc/${process.pid}/task`)) {
    const s = await procCpuSeconds(`${process.pid}/task/${tid}`);
    if (tid === String(process.pid)) main += s;
    else others += s;
  }
  return { main, others };
}

/** A counter's values summed by stage. */
const byStage = (samples: PromSample[], name: string) => {
  const m = new Map<string, number>();
  for (const x of samples)
    if (x.name === name)
      m.set(x.labels.stage ?? "?", (m.get(x.labels.stage ?? "?") ?? 0) + x.value);
  return m;
};

const dir = await mkdtemp(join(tmpdir(), "reco-steady-"));
const monitorPort = await freePort();
const nats = await startEmbeddedNats({ port: 0, storeDir: join(dir, "nats"), monitorPort });
const app = await startApp(appConfig(nats, join(dir, "app")), pino({ level: "silent" }));
const load = await startLoad(nats.url, RATE);
const nc = await connect({ servers: nats.url });
const jsm = await nc.jetstreamManager();
try {
  await sleep(3000);
  const varz = async () =>
    (await (await fetch(`http://127.0.0.1:${monitorPort}/varz`)).json()) as {
      in_msgs: number;
      out_msgs: number;
    };
  /** Messages stored so far per stream and subject family (the subject's first two tokens). */
  const stored = async () => {
    const out = new Map<string, number>();
    for await (const si of jsm.streams.list()) {
      const info = await jsm.streams.info(si.config.name, { subjects_filter: ">" });
      for (const [subject, n] of Object.entries(info.state.subjects ?? {})) {
        const family = `${si.config.name}:${subject.split(".").slice(0, 2).join(".")}`;
        out.set(family, (out.get(family) ?? 0) + n);
      }
    }
    return out;
  };
  const natsCpu = () => procCpuSeconds(nats.pid);
  /** Every counter the measure reads, now. */
  const sample = async () => ({
    stored: await stored(),
    varz: await varz(),
    threads: await threadsCpu(),
    parse: await parseCpuSeconds(app),
    nats: await natsCpu(),
    metrics: await scrape(app.metricsPort),
    load: await load.stats(),
    at: performance.now(),
  });
  const before = await sample();
  await sleep(SECS * 1000);
  const after = await sample();
  const secs = (after.at - before.at) / 1000;
  const events = after.load.acked - before.load.acked;
  const perEvent = (cpuSeconds: number) => ((cpuSeconds * 1e6) / events).toFixed(0);
  console.log(
    `${(events / secs).toFixed(0)} events/s for ${secs.toFixed(1)} s; CPU µs per event: ` +
      `main thread ${perEvent(after.threads.main - before.threads.main)}, ` +
      `this process's other threads ${perEvent(after.threads.others - before.threads.others)}, ` +
      `parse process ${perEvent(after.parse - before.parse)}, ` +
      `nats-server ${perEvent(after.nats - before.nats)}`,
  );
  console.log(
    `nats-server messages/s: in ${((after.varz.in_msgs - before.varz.in_msgs) / secs).toFixed(0)}, ` +
      `out ${((after.varz.out_msgs - before.varz.out_msgs) / secs).toFixed(0)}`,
  );
  const families = [...after.stored]
    .map(([k, n]) => [k, (n - (before.stored.get(k) ?? 0)) / secs] as const)
    .filter(([, r]) => r > 0)
    .sort((a, b) => b[1] - a[1]);
  console.log(`stored/s: ${families.map(([k, r]) => `${k} ${r.toFixed(0)}`).join(", ")}`);
  const msgs0 = byStage(before.metrics, "reco_stage_messages_in_total");
  const msgs1 = byStage(after.metrics, "reco_stage_messages_in_total");
  const busy0 = byStage(before.metrics, "reco_stage_busy_seconds_total");
  const busy1 = byStage(after.metrics, "reco_stage_busy_seconds_total");
  const rows = [...busy1]
    .map(([stage, b]) => {
      const busy = b - (busy0.get(stage) ?? 0);
      const msgs = (msgs1.get(stage) ?? 0) - (msgs0.get(stage) ?? 0);
      return { stage, busy, msgs };
    })
    .filter((r) => r.msgs > 0)
    .sort((a, b) => b.busy - a.busy);
  console.log("stage: messages in/s, µs on the event loop per message and per event");
  for (const r of rows)
    console.log(
      `  ${r.stage}: ${(r.msgs / secs).toFixed(0)}/s, ${((r.busy * 1e6) / r.msgs).toFixed(0)} µs, ` +
        `${((r.busy * 1e6) / events).toFixed(1)} µs`,
    );
} finally {
  await load.stop();
  await nc.close();
  await app.stop();
  await nats.stop();
  await rm(dir, { recursive: true, force: true });
}
