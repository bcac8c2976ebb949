/**
 * Restart A/B on a kept state (not part of `npm run bench`): `make` ingests a bench step 6 state
 * once (nats-server store + DATA_DIR, the expected answers) into a fixture directory; `restart`
 * copies the fixture, starts nats-server on the copy, then the app (dist/ as built), and times
 * spawn → first OK answer → right answers, as step 6 does after its kill. Each restart starts
 * from the same bytes, so two builds compare on equal state without a new ingest of minutes.
 *
 *   [AB_WAIT_MODEL=1] npx tsx bench/restart-ab.ts make <dir> <users>
 *   [AB_DIGITS=12] npx tsx bench/restart-ab.ts restart <dir> [runs]
 *
 * A/B of two commits: a second worktree (`git worktree add --detach /tmp/old <commit>`, its own
 * `node bin/build.mjs`, this file copied in) restarted on a fixture its own code made, turn about
 * with this one on its fixture, at the same load. BENCH_APP_NODE_FLAGS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof" profiles the restarted app (the profile is written when it stops).
 * Measured this way (1M users, load 12-15): right answers 16.7 / 12.8 s before,
 * 11.8 / 7.9 s after the lazy collaborative rows and merged waiting lists.
 */
import { execFileSync } from "node:child_process";
import { cp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { startEmbeddedNats, freePort } from "../connectors/nats/embedded-server.js";
import { connectNats } from "../connectors/nats/connection.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { createRecoClient } from "../connectors/grpc/client.js";
import { epochNow, spawnApp, waitCaughtUp, waitSnapshots } from "./app-process.js";
import { DEFAULT_GENERATOR, streamMessages } from "./generator.js";
import { procCpuSeconds, sleep, sum, threadCpuList, threadSchedSeconds } from "./util.js";
import { content, probeUsers } from "./steps/recovery-common.js";

const [mode, dir, arg] = process.argv.slice(2);
if (!dir) throw new Error("usage: restart-ab.ts make|restart <dir> [users|runs]");
const PARTITIONS = 8;

if (mode === "make") {
  const users = Number(arg ?? 1_000_000);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const nats = await startEmbeddedNats({ port: 0, storeDir: join(dir, "nats") });
  const nc = await connectNats({ servers: nats.url, name: "restart-ab" });
  const app = spawnApp({
    natsUrl: nats.url,
    dataDir: join(dir, "app"),
    grpcPort: await freePort(),
    metricsPort: await freePort(),
    partitions: PARTITIONS,
  });
  try {
    await app.ready();
    const pub = createJetStreamPublisher(nc, { window: 2048 });
    const t0 = Date.now();
    await pub.publishMany(
      streamMessages(users, {
        ...DEFAULT_GENERATOR,
        users,
        userDist: "cycle",
        start: Date.now() - DEFAULT_GENERATOR.spanMs,
      }),
    );
    await pub.close();
    const lastSeq = (await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM)).state
      .last_seq;
    console.log(`published ${users} in ${(Date.now() - t0) / 1000} s; catching up`);
    const caught = await waitCaughtUp(app, lastSeq, { timeoutMs: 30 * 60_000 });
    if (caught.timedOut) throw new Error("not caught up");
    console.log(`caught up after ${(Date.now() - t0) / 1000} s`);
    await waitSnapshots(app, 2);
    // AB_WAIT_MODEL=1: the kill waits until a trained ALS model serves and no training runs,
    // so the restart reads a model back (step 6 is slower with one).
    if (process.env.AB_WAIT_MODEL) {
      for (;;) {
        const m = await app.metrics();
        const point = sum(m, "reco_recommender", { name: "model_point" });
        const training = sum(m, "reco_recommender", { name: "training" });
        console.log(`model point ${point}, training ${training}`);
        if (point > 0 && training === 0) break;
        await sleep(5000);
      }
      await waitSnapshots(app, 3);
    }
    const asked = probeUsers(users);
    const c = createRecoClient(app.grpcAddress);
    // Answers still move for a while after the catch-up (parse's idle markers close the last
    // windows, which moves the popularity table): the kill waits until they stay the same for
    // three looks 10 s apart, and a snapshot after that, so the restart's answers can equal them.
    let expected = await Promise.all(asked.map((u) => c.getRecommendations(u, 10)));
    for (let same = 0, looks = 0; same < 2 && looks < 30; looks++) {
      await sleep(10_000);
      const now = await Promise.all(asked.map((u) => c.getRecommendations(u, 10)));
      same = now.every((a, k) => content(a) === content(expected[k]!)) ? same + 1 : 0;
      expected = now;
    }
    await waitSnapshots(app, 1);
    c.close();
    await writeFile(
      join(dir, "expected.json"),
      JSON.stringify({ users: asked, want: expected.map(content) }),
    );
    await app.kill();
    console.log("fixture made");
  } finally {
    await app.stop();
    await nc.close();
    await nats.stop();
  }
} else if (mode === "restart") {
  /**
   * The restart's answers against the fixture's: exact, or (AB_DIGITS=n) with scores to n
   * significant digits. A fixture restarted minutes after it was made has its clock moved by
   * parse's idle progress, so the decayed scores differ in their last bits (normalised by a
   * maximum decayed by the same factor): exact equality never comes.
   */
  const digits = Number(process.env.AB_DIGITS ?? 0);
  const round = (answer: string): string =>
    JSON.stringify(
      JSON.parse(answer, (_k, v: unknown) =>
        typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(digits)) : v,
      ),
    );
  const same = (got: string, want: string): boolean =>
    got === want || (digits > 0 && round(got) === round(want));
  const runs = Number(arg ?? 1);
  const { users, want } = JSON.parse(await readFile(join(dir, "expected.json"), "utf8")) as {
    users: string[];
    want: string[];
  };
  for (let run = 0; run < runs; run++) {
    const work = `${dir}-run`;
    await rm(work, { recursive: true, force: true });
    await cp(dir, work, { recursive: true });
    // The copy's pages on disk first: nats-server fsyncs its store at start, and with ~0.7 GB of
    // the copy still dirty the app's LevelDB open (its own fsyncs behind those) took 0.4-0.6 s
    // instead of ~10 ms, a restart's cost that step 6 (nats-server running on) never pays.
    execFileSync("sync");
    const nats = await startEmbeddedNats({ port: 0, storeDir: join(work, "nats") });
    const nc = await connectNats({ servers: nats.url, name: "restart-ab" });
    // The server recovers its streams first (the bench's server never stopped).
    await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM);
    await nc.close();
    await sleep(1000);
    const grpcPort = await freePort();
    const app = spawnApp({
      natsUrl: nats.url,
      dataDir: join(work, "app"),
      grpcPort,
      metricsPort: await freePort(),
      partitions: PARTITIONS,
    });
    const t0 = app.spawnedAt;
    let firstOk = NaN;
    let right = NaN;
    let attempts = 0;
    const atRight: Record<string, number> = {};
    let lastGot: string[] = [];
    const threads: Record<string, number> = {};
    while (epochNow() - t0 < 60_000) {
      attempts++;
      const client = createRecoClient(app.grpcAddress, {
        channelOptions: { "grpc.use_local_subchannel_pool": 1 },
      });
      try {
        const got: string[] = [];
        for (const u of users) {
          got.push(content(await client.getRecommendations(u, 10, { deadlineMs: 2000 })));
          if (Number.isNaN(firstOk)) firstOk = epochNow();
        }
        lastGot = got;
        if (got.every((g, k) => same(g, want[k]!))) {
          right = epochNow();
          // The main thread's time on a CPU and runnable: spawn → now, less both, is the time it slept
          // (I/O, timers, idle); run + sleep is what the restart would take with a core free.
          const t = await threadSchedSeconds(app.pid);
          const wall = (right - t0) / 1000;
          const cpu = await procCpuSeconds(app.pid);
          // What the process's other threads (and children) used meanwhile.
          for (const [name, s] of Object.entries(await threadCpuList(app.pid)))
            if (s >= 0.01) threads[name] = Math.round(s * 100) / 100;
          Object.assign(atRight, {
            mainRunS: t.run,
            mainRunnableS: t.wait,
            mainSleptS: wall - t.run - t.wait,
            coreFreeS: wall - t.wait,
            processCpuS: cpu,
          });
          break;
        }
      } catch {
        // not yet
      } finally {
        client.close();
      }
      await sleep(10);
    }
    // Not right within the minute: which users' answers differed, and how.
    if (Number.isNaN(right))
      lastGot.forEach((g, k) => {
        if (!same(g, want[k]!))
          console.log(JSON.stringify({ user: users[k], got: g, want: want[k] }));
      });
    const ready = await app.ready(60_000).catch(() => undefined);
    // Step 6's parts (recovery.ts breakdown): spawn → first log line (process start), → the gRPC bind.
    const config = await app
      .waitForLog((l) => l.msg === "configuration", 1000)
      .catch(() => undefined);
    const listen = await app
      .waitForLog((l) => l.msg === "gRPC server listening", 1000)
      .catch(() => undefined);
    console.log(
      JSON.stringify({
        run,
        spawnedAt: t0,
        firstOkS: (firstOk - t0) / 1000,
        rightS: (right - t0) / 1000,
        startS: config ? (config.time - t0) / 1000 : NaN,
        bindS: listen ? (listen.time - t0) / 1000 : NaN,
        readyS: ready ? (ready.time - t0) / 1000 : NaN,
        attempts,
        ...Object.fromEntries(
          Object.entries(atRight).map(([k, v]) => [k, Math.round(v * 100) / 100]),
        ),
        threads,
      }),
    );
    await sleep(1000);
    await app.stop();
    await nats.stop();
  }
} else throw new Error(`unknown mode ${mode}`);
