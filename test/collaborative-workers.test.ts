import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { freePort, startEmbeddedNats } from "../connectors/nats/embedded-server.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { LEASE_BUCKET } from "../connectors/nats/leases.js";
import { liveKeys } from "../connectors/nats/topology.js";
import { generateLog } from "./helpers/events.js";
import { sleep, useCleanups } from "./helpers/harness.js";
import { gauges, stagesBehind, type Gauge } from "./helpers/positions.js";
import { spawnWorker, type WorkerProcess } from "./helpers/worker.js";

/**
 * The collaborative source over workers: each `collaborative/<p>` runs with its partition's unit,
 * wherever that is, and sends its rows' changes to the trainer (`collaborative-trainer/0`, unit
 * p0) over JetStream. One worker and two workers sharing the partitions, fed the same log, train
 * the same final model: same input point, same offline figures (computed from the model on a
 * held-out slice of its matrix), with the partitions' collaborative stages on both workers.
 */

const H = 3_600_000;
const enc = new TextEncoder();

const log = generateLog({
  seed: 5,
  events: 3000,
  users: 200,
  items: 120,
  categories: ["a", "b", "c", "d"],
  start: Date.parse("2026-11-12T00:00:00Z"),
  spanMs: 6 * H,
  lateShare: 0.01,
  lateByMs: H,
});

interface Outcome {
  /** The newest implicit model: input point and offline figures. */
  model: Record<string, number>;
  /** Which workers ran a collaborative partition stage. */
  collaborativeOn: string[];
  trainerOn: string[];
}

async function run(ids: string[], cleanups: ReturnType<typeof useCleanups>): Promise<Outcome> {
  const dir = await mkdtemp(join(tmpdir(), "reco-collab-workers-"));
  cleanups.add(() => rm(dir, { recursive: true, force: true }));
  const nats = await startEmbeddedNats({ port: await freePort(), storeDir: join(dir, "nats") });
  cleanups.add(() => nats.stop());
  const nc = await connect({ servers: nats.url, noAsyncTraces: true });
  cleanups.add(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await ensureEventsStream(jsm, { replicas: 1 });

  const workers: WorkerProcess[] = [];
  for (const id of ids)
    workers.push(
      await spawnWorker(
        id,
        {
          NATS_URL: nats.url,
          DATA_DIR: join(dir, id),
          PARTITIONS: "4",
          REPLICAS: "1",
          LEASE_TTL_MS: "3000",
          SNAPSHOT_INTERVAL: "500",
          // Idle markers follow wall time; the compared runs must not depend on pauses.
          IDLE_TIMEOUT_MS: "0",
          RANKER: "blend",
        },
        cleanups,
      ),
    );

  // Every unit owned, by every worker, the owners settled.
  const units = ["p0", "p1", "p2", "p3", "parse"];
  const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
  let last = "";
  let stableSince = Date.now();
  for (const until = Date.now() + 60_000; ; await sleep(200)) {
    const owners: Record<string, string> = {};
    for (const [k, e] of await liveKeys(jsm, kv, LEASE_BUCKET))
      owners[k] = e.json<{ owner: string }>().owner;
    const now = JSON.stringify(owners);
    if (now !== last) [last, stableSince] = [now, Date.now()];
    const owned = units.every((u) => owners[u] !== undefined);
    const shared = ids.every((id) => Object.values(owners).includes(id));
    if (owned && shared && Date.now() - stableSince > 4_000) break;
    if (Date.now() > until) throw new Error(`units not settled: ${now}`);
  }

  const pub = createJetStreamPublisher(nc, { window: 256, timeoutMs: 5000, retries: 5 });
  await pub.publishMany(
    log.map((e) => ({
      subject: `events.${e.event_type}`,
      data: enc.encode(JSON.stringify(e)),
      opts: { msgId: e.event_id },
    })),
  );
  await pub.close();

  // Caught up: every stage at its input's end, the newest point's model served.
  const of = (gs: Gauge[], name: string) => gs.find((g) => g.labels.name === name)?.value;
  for (const until = Date.now() + 180_000; ; await sleep(300)) {
    const positions = (
      await Promise.all(workers.map((w) => gauges(w.metricsPort, "reco_stage_position")))
    ).flat();
    const behind = await stagesBehind(jsm, positions);
    const recs = await Promise.all(workers.map((w) => gauges(w.metricsPort, "reco_recommender")));
    const trainer = recs.findIndex((gs) => of(gs, "train_point") !== undefined);
    const rec = recs[trainer] ?? [];
    const done =
      behind === 0 &&
      positions.some((g) => g.labels.stage === "collaborative-trainer") &&
      (of(rec, "train_point") ?? 0) > 0 &&
      of(rec, "model_point") === of(rec, "train_point") &&
      of(rec, "training") === 0;
    if (done) {
      const model = (await gauges(workers[trainer]!.metricsPort, "reco_model")).filter(
        (g) => g.labels.kind === "implicit",
      );
      const on = async (stage: string) =>
        (
          await Promise.all(
            workers.map(async (w) =>
              (await gauges(w.metricsPort, "reco_stage_position")).some(
                (g) => g.labels.stage === stage,
              )
                ? [w.id]
                : [],
            ),
          )
        ).flat();
      return {
        model: Object.fromEntries(
          ["data_position", "offline_hit_rate", "offline_ndcg", "offline_users"].map((n) => [
            n,
            of(model, n) ?? -1,
          ]),
        ),
        collaborativeOn: await on("collaborative"),
        trainerOn: await on("collaborative-trainer"),
      };
    }
    if (Date.now() > until) throw new Error(`not caught up: ${behind} stages behind`);
  }
}

describe("the collaborative source over workers", () => {
  const cleanups = useCleanups();

  it(
    "trains the same model with one worker and with two sharing the partitions",
    { timeout: 420_000 },
    async () => {
      const one = await run(["w0"], cleanups);
      const two = await run(["w0", "w1"], cleanups);
      // A model of the final point (the log spans six hours: a point per hour entered).
      expect(one.model.data_position).toBeGreaterThan(2000);
      expect(one.model.offline_users).toBeGreaterThan(0);
      expect(two.model).toEqual(one.model);
      expect(one.collaborativeOn).toEqual(["w0"]);
      expect(two.collaborativeOn.sort()).toEqual(["w0", "w1"]);
      expect(two.trainerOn.length).toBe(1);
    },
  );
});
