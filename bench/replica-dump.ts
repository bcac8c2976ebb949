/**
 * How long a split `reco start` (SERVE_PROCESS=1) takes to serve right blended answers after a
 * start on a kept state: its serving process's replica of the blend's source stages reads their
 * snapshots from the state store before the ingest process is spawned (bin/serve-app.ts
 * readSourceSnapshots; formerly a full dump from the ingest process), and answers with
 * the design ranking until then. Not part of `npm run bench`: run it on a fixture that
 * bench/restart-ab.ts `make` wrote (copied first; the fixture is not changed).
 *
 *   npx tsx bench/restart-ab.ts make /tmp/fix 1000000
 *   [SERVE_PROCESS=0] npx tsx bench/replica-dump.ts /tmp/fix [seconds=300]
 *
 * Prints, every 2 s, the replica's keys and chunks received and whether it is ready, then the
 * times (from spawn) of the first OK answer, the replica's ready and the first right answers
 * (the answers the fixture's app gave before it was killed), the event time of an answer, and
 * the resident memory of the serving process and of every process of the app 5 s later.
 * Right answers are those of the kill's clock: once idle progress has moved the blend's clock
 * (about a minute into a start), a freshly computed answer differs from them in the last bits of
 * trending's normalised scores, in either mode; DUMP_NOT_BEFORE_S=70 asks a one-process start
 * as late as a split one is ready.
 */
import { cp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { startEmbeddedNats, freePort } from "../connectors/nats/embedded-server.js";
import { connectNats } from "../connectors/nats/connection.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { createRecoClient } from "../connectors/grpc/client.js";
import { epochNow, spawnApp } from "./app-process.js";
import { content } from "./steps/recovery-common.js";
import { procRssBytes, sleep, sum } from "./util.js";

const [dir, secondsArg] = process.argv.slice(2);
if (!dir) throw new Error("usage: replica-dump.ts <fixture dir> [seconds]");
const limitMs = Number(secondsArg ?? 300) * 1000;
/** DUMP_NOT_BEFORE_S: right answers count only from then on (the one-process app asked as late). */
const notBeforeS = Number(process.env.DUMP_NOT_BEFORE_S ?? 0);
const { users, want } = JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as {
  users: string[];
  want: string[];
};
const work = `${dir}-dump`;
await rm(work, { recursive: true, force: true });
await cp(dir, work, { recursive: true });
const nats = await startEmbeddedNats({ port: 0, storeDir: join(work, "nats") });
const nc = await connectNats({ servers: nats.url, name: "replica-dump" });
await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM);
await nc.close();
const split = process.env.SERVE_PROCESS !== "0";
const app = spawnApp({
  natsUrl: nats.url,
  dataDir: join(work, "app"),
  grpcPort: await freePort(),
  metricsPort: await freePort(),
  partitions: 8,
  env: { SERVE_PROCESS: split ? "1" : "0" },
});
const t0 = app.spawnedAt;
const at = () => Math.round(epochNow() - t0) / 1000;
let firstOk = NaN;
let ready = NaN;
let right = NaN;
let lastPrint = 0;
let lastGot: string[] = [];
try {
  while (epochNow() - t0 < limitMs && Number.isNaN(right)) {
    const m = await app.metrics().catch(() => []);
    const replica = (name: string) => sum(m, "reco_blend_replica", { name });
    if (split && Number.isNaN(ready) && replica("ready") === 1) ready = at();
    if (epochNow() - lastPrint >= 2000) {
      lastPrint = epochNow();
      console.log(
        `${at().toFixed(1)} s: replica keys ${replica("keys")}, chunks ${replica("chunks")}, ` +
          `ready ${replica("ready")}; answers from the replica ${sum(m, "reco_serving_answers_total", { from: "replica" })}, ` +
          `design fallback ${sum(m, "reco_serving_answers_total", { from: "replica_fallback" })}`,
      );
    }
    const client = createRecoClient(app.grpcAddress, {
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    try {
      const got: string[] = [];
      for (const u of users) {
        got.push(content(await client.getRecommendations(u, 10, { deadlineMs: 2000 })));
        if (Number.isNaN(firstOk)) firstOk = at();
      }
      lastGot = got;
      if (got.every((g, k) => g === want[k]) && at() >= notBeforeS) right = at();
    } catch {
      // not yet
    } finally {
      client.close();
    }
    await sleep(200);
  }
  console.log(JSON.stringify({ split, firstOkS: firstOk, replicaReadyS: ready, rightS: right }));
  {
    // The event time the answers are at (the blend's clock), to compare a split and a one-process
    // start on the same fixture.
    const client = createRecoClient(app.grpcAddress);
    const r = await client.getRecommendations(users[0]!, 12, { deadlineMs: 5000 });
    client.close();
    const w = r.watermark;
    console.log(`${users[0]}'s answer is at event time ${w ? `${w.seconds}.${w.nanos}` : "none"}`);
  }
  if (Number.isNaN(right)) {
    // Asked for 11 items (not an answer the memo holds), the first 10 as the fixture's.
    const client = createRecoClient(app.grpcAddress);
    let fresh = 0;
    for (let k = 0; k < users.length; k++) {
      const r = await client.getRecommendations(users[k]!, 11, { deadlineMs: 5000 });
      r.items.length = Math.min(r.items.length, 10);
      if (content(r) === want[k]) fresh++;
    }
    client.close();
    console.log(`asked for 11 items: ${fresh} of ${users.length} users' first 10 right`);
  }
  {
    // Memory once the start is over (5 s later: a lazy load's records placed): the serving
    // process (with a split, the replica's copy of the sources is there) and every process.
    await sleep(5000);
    const mib = (b: number) => `${Math.round(b / 2 ** 20)} MiB`;
    console.log(
      `rss: serving process ${mib(await procRssBytes(app.pid))}, all ${mib(await app.rss())}`,
    );
  }
  if (Number.isNaN(right))
    for (let k = 0; k < users.length; k++)
      if (lastGot[k] !== want[k]) console.log(`${users[k]}: got ${lastGot[k]}\n  want ${want[k]}`);
} finally {
  await app.stop();
  await nats.stop();
  await rm(work, { recursive: true, force: true });
}
