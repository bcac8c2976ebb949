import { describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import {
  freePort,
  startEmbeddedNats,
  type EmbeddedNats,
} from "../connectors/nats/embedded-server.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { LEASE_BUCKET } from "../connectors/nats/leases.js";
import { liveKeys } from "../connectors/nats/topology.js";
import { decodeEnvelope } from "../actors/host/index.js";
import { generateLog } from "./helpers/events.js";
import { sleep, useCleanups } from "./helpers/harness.js";
import { reference, type RefEvent } from "./helpers/reference.js";

/**
 * Scale-out on a NATS cluster: a 3-node JetStream cluster on loopback, workers that
 * share the partitions through KV leases, a gateway that answers from a replica. Kill a worker,
 * kill a NATS node, add a worker: the answers still equal the reference of the whole log.
 * CLUSTER_DEBUG=<dir> writes every worker's and the gateway's log there and, if the answers do
 * not converge, prints stage positions and the streams' and consumers' cluster state.
 */

const root = resolve(import.meta.dirname, "..");
const H = 3_600_000;
const enc = new TextEncoder();
const t0 = Date.now();
const step = (what: string) => console.log(`[cluster test +${Date.now() - t0} ms] ${what}`);

const log: RefEvent[] = generateLog({
  seed: 77,
  events: 3000,
  users: 150,
  items: 80,
  categories: ["a", "b", "c", "d", "e"],
  start: Date.parse("2026-11-12T00:00:00Z"),
  spanMs: 8 * H,
  lateShare: 0.01,
  lateByMs: H,
});

interface Proc {
  child: ChildProcess;
  out: () => string;
  metricsPort: number;
  grpcPort: number;
}

async function spawnRole(role: "worker" | "gateway", env: Record<string, string>): Promise<Proc> {
  const metricsPort = await freePort();
  const grpcPort = await freePort();
  const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), role], {
    cwd: root,
    env: {
      ...process.env,
      METRICS_PORT: String(metricsPort),
      GRPC_PORT: String(grpcPort),
      GRPC_HOST: "127.0.0.1",
      PARTITIONS: "4",
      REPLICAS: "3",
      LEASE_TTL_MS: "3000",
      ARCHIVE_INTERVAL_MS: "1500",
      SNAPSHOT_INTERVAL: "500",
      // Idle markers follow wall time; the compared runs must not depend on pauses.
      IDLE_TIMEOUT_MS: "0",
      TRENDING_TRIGGER: "200",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const debugFile = process.env.CLUSTER_DEBUG
    ? join(process.env.CLUSTER_DEBUG, `${role}-${env.WORKER_ID ?? "gw"}.log`)
    : undefined;
  const take = (d: Buffer) => {
    out += d.toString();
    if (debugFile) appendFileSync(debugFile, d);
  };
  child.stdout?.on("data", take);
  child.stderr?.on("data", take);
  const until = Date.now() + 60_000;
  while (!out.includes("reco-stream ready")) {
    if (child.exitCode !== null) throw new Error(`${role} exited:\n${out}`);
    if (Date.now() > until) throw new Error(`${role} not ready:\n${out}`);
    await sleep(100);
  }
  return { child, out: () => out, metricsPort, grpcPort };
}

const kill = async (p: Proc) => {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill("SIGKILL");
  await new Promise((r) => p.child.once("exit", r));
};

/** The events of EVENTS in stream order (every message read by sequence; a read retried). */
async function storedOrder(nc: NatsConnection, count: number): Promise<RefEvent[]> {
  const jsm = await nc.jetstreamManager();
  const dec = new TextDecoder();
  const read = async (seq: number): Promise<RefEvent> => {
    for (let attempt = 0; ; attempt++) {
      try {
        const m = await jsm.streams.getMessage("EVENTS", { seq });
        return JSON.parse(dec.decode(m.data)) as RefEvent;
      } catch (err) {
        if (attempt >= 10) throw err;
        await sleep(300);
      }
    }
  };
  const out: RefEvent[] = [];
  for (let from = 1; from <= count; from += 100) {
    const seqs = Array.from({ length: Math.min(100, count - from + 1) }, (_, k) => from + k);
    out.push(...(await Promise.all(seqs.map(read))));
  }
  return out;
}

/** Lease owners; {} when the cluster cannot answer right now (electing leaders). */
async function owners(nc: NatsConnection): Promise<Record<string, string>> {
  try {
    return await readOwners(nc);
  } catch (err) {
    if (process.env.CLUSTER_DEBUG) step(`owners: ${String(err)}`);
    return {};
  }
}

async function readOwners(nc: NatsConnection): Promise<Record<string, string>> {
  // No consumer (liveKeys): cheap while the cluster is electing leaders.
  const kv = await nc.jetstream().views.kv(LEASE_BUCKET);
  const entries = await liveKeys(await nc.jetstreamManager(), kv, LEASE_BUCKET);
  const out: Record<string, string> = {};
  for (const [k, e] of entries) out[k] = e.json<{ owner: string }>().owner;
  return out;
}

describe("scale-out on a 3-node NATS cluster", () => {
  const cleanups = useCleanups();

  // No retry: it was flaky, for causes now fixed and each tested on its own:
  // hop ids shared by two contents (test/hop-ids), a unit taken back never started and a handover
  // that let two workers run a unit (test/leases), a stop that waited for consumer placement
  // (test/host-stop-while-opening), a gateway replica that applied replayed profiles
  // (test/profile-replica).
  it(
    "moves partitions when a worker dies, survives a dead NATS node, rebalances on a new worker",
    { timeout: 300_000 },
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "reco-cluster-"));
      cleanups.add(() => rm(dir, { recursive: true, force: true }));
      // Three NATS nodes with routes to each other.
      const ports = [await freePort(), await freePort(), await freePort()];
      const cports = [await freePort(), await freePort(), await freePort()];
      const routes = cports.map((p) => `nats://127.0.0.1:${p}`).join(",");
      const nodes: EmbeddedNats[] = [];
      for (let i = 0; i < 3; i++) {
        const n = await startEmbeddedNats({
          port: ports[i]!,
          storeDir: join(dir, `nats${i}`),
          extraArgs: [
            "--server_name",
            `n${i}`,
            "--cluster_name",
            "reco",
            "--cluster",
            `nats://127.0.0.1:${cports[i]}`,
            "--routes",
            routes,
          ],
        });
        nodes.push(n);
        cleanups.add(() => n.stop());
      }
      const natsUrl = ports.map((p) => `nats://127.0.0.1:${p}`).join(",");
      const nc = await connect({
        servers: natsUrl.split(","),
        noAsyncTraces: true,
        maxReconnectAttempts: -1,
      });
      cleanups.add(() => nc.close());
      // Wait for the JetStream meta leader, then create the input stream with three replicas.
      // ("no suitable peers for placement" until all three know each other: 30 s was too short
      // once at load 16.)
      const until = Date.now() + 90_000;
      for (;;) {
        try {
          await ensureEventsStream(await nc.jetstreamManager(), { replicas: 3 });
          break;
        } catch (err) {
          if (Date.now() > until) throw err;
          await sleep(300);
        }
      }

      const workers: Proc[] = [];
      const startWorker = async (id: string) => {
        const w = await spawnRole("worker", {
          NATS_URL: natsUrl,
          WORKER_ID: id,
          DATA_DIR: join(dir, id),
        });
        workers.push(w);
        cleanups.add(() => kill(w));
        return w;
      };
      await startWorker("w1");
      await startWorker("w2");
      await startWorker("w3");
      const gateway = await spawnRole("gateway", { NATS_URL: natsUrl, DATA_DIR: join(dir, "gw") });
      cleanups.add(() => kill(gateway));

      // All five units owned, by the three workers.
      const allUnits = ["p0", "p1", "p2", "p3", "parse"];
      const waitOwners = async (pred: (o: Record<string, string>) => boolean, ms = 30_000) => {
        const end = Date.now() + ms;
        let o = await owners(nc);
        while (!pred(o) && Date.now() < end) {
          await sleep(200);
          o = await owners(nc);
        }
        return o;
      };
      const first = await waitOwners((o) => allUnits.every((u) => o[u] !== undefined));
      expect(Object.keys(first).sort()).toEqual(allUnits);

      // Like any publisher on a cluster: retry a publish that found no stream leader for a moment
      // (503 while a node is down); the ids make a retry idempotent.
      const publish = async (part: RefEvent[]) => {
        for (let attempt = 0; ; attempt++) {
          const pub = createJetStreamPublisher(nc, { window: 256, timeoutMs: 3000, retries: 20 });
          try {
            await pub.publishMany(
              part.map((e) => ({
                subject: `events.${e.event_type}`,
                data: enc.encode(JSON.stringify(e)),
                opts: { msgId: e.event_id },
              })),
            );
            await pub.close();
            return;
          } catch (err) {
            await pub.close().catch(() => undefined);
            if (attempt >= 20) throw err;
            await sleep(500);
          }
        }
      };
      await publish(log.slice(0, 1000));
      await sleep(1500);

      step("kill the worker owning parse");
      // 1. Kill the worker that owns parse: every unit it held moves to the others.
      const victimId = first.parse!;
      const victim = workers.find((w) => w.out().includes(`worker ${victimId}`))!;
      await kill(victim);
      const moved = await waitOwners(
        (o) => allUnits.every((u) => o[u] !== undefined && o[u] !== victimId),
        30_000,
      );
      expect(Object.values(moved)).not.toContain(victimId);
      await publish(log.slice(1000, 2000));

      step("kill a NATS node");
      // 2. Kill a NATS node: processing goes on (R3 streams, clients reconnect). The victim is the
      // leader of the input stream, the node whose loss costs most (a new leader must be elected).
      const leader = (await (await nc.jetstreamManager()).streams.info("EVENTS")).cluster?.leader;
      const nodeVictim = Math.max(0, ["n0", "n1", "n2"].indexOf(leader ?? ""));
      step(`kill NATS node n${nodeVictim} (EVENTS leader: ${leader})`);
      await nodes[nodeVictim]!.kill();
      await publish(log.slice(2000, 2500));

      step("add a worker");
      // 3. Add a worker: units rebalance to it.
      await startWorker("w4");
      const rebalanced = await waitOwners((o) => Object.values(o).includes("w4"), 30_000);
      expect(Object.values(rebalanced)).toContain("w4");
      await publish(log.slice(2500));

      step("compare with the reference");
      // The answers equal the reference of the whole log in the order EVENTS stored it. That
      // is not always the log's order: a publish that meets the node kill is retried, and the
      // retried events land after later ones (seen: events 2000-2244 of the log stored after
      // 2245-2499), so some become late by the stream's clock, as DESIGN §3.2 defines lateness.
      const lastSeq = (await (await nc.jetstreamManager()).streams.info("EVENTS")).state.last_seq;
      const stored = await storedOrder(nc, lastSeq);
      expect(stored.map((e) => e.event_id).sort()).toEqual(log.map((e) => e.event_id).sort());
      const ref = reference(stored);
      const client = createRecoClient(`127.0.0.1:${gateway.grpcPort}`);
      cleanups.add(async () => client.close());
      const users = [...new Set(log.map((e) => String(e.user_id)))].sort();
      const simplify = (items: { itemId: string; score: number; source: number }[]) =>
        items.map((i) => [
          i.itemId,
          i.score.toFixed(9),
          i.source === 1 ? "PERSONALIZED" : "POPULAR_FALLBACK",
        ]);
      const expected = (u: string) =>
        ref.recommend(u, 10).map((i) => [i.itemId, i.score.toFixed(9), i.source]);
      const end = Date.now() + 150_000;
      let wrong = users;
      while (wrong.length > 0 && Date.now() < end) {
        const next: string[] = [];
        for (const u of wrong) {
          const res = await client.getRecommendations(u, 10).catch(() => undefined);
          if (!res || JSON.stringify(simplify(res.items)) !== JSON.stringify(expected(u)))
            next.push(u);
        }
        if (next.length !== wrong.length) step(`${next.length} of ${users.length} users differ`);
        wrong = next;
        if (wrong.length > 0) await sleep(500);
      }
      if (wrong.length > 0 && process.env.CLUSTER_DEBUG) {
        for (const w of workers) {
          if (w.child.exitCode !== null || w.child.signalCode !== null) continue;
          const text = await (await fetch(`http://127.0.0.1:${w.metricsPort}/metrics`)).text();
          console.log(
            "worker",
            w.out().match(/worker (w\d)/)?.[1],
            text
              .split("\n")
              .filter((l) => l.startsWith("reco_stage_position"))
              .join("\n"),
            w.out().slice(-3000),
          );
        }
        const jsm = await nc.jetstreamManager();
        console.log("EVENTS", (await jsm.streams.info("EVENTS")).state.last_seq, await owners(nc));
        // The popularity rows in the bucket against the reference's.
        const kvp = await nc.jetstream().views.kv("reco_popularity");
        const inKv = new Map<string, number>();
        for (const [k, e] of await liveKeys(jsm, kvp, "reco_popularity"))
          inKv.set(k, e.json<{ purchases: number }>().purchases);
        const refRows = ref.popularity();
        console.log(
          "popularity: kv keys",
          inKv.size,
          "ref rows",
          refRows.length,
          "kv purchases",
          [...inKv.values()].reduce((a, b) => a + Math.max(0, b), 0),
          "ref purchases",
          refRows.reduce((a, r) => a + r.purchases, 0),
          [...inKv.entries()].slice(0, 5),
          refRows.slice(0, 5).map((r) => [r.item, r.purchases]),
        );
        const gm = await (await fetch(`http://127.0.0.1:${gateway.metricsPort}/metrics`)).text();
        console.log(
          "gateway metrics",
          gm
            .split("\n")
            .filter((l) => l.startsWith("reco_") && !l.includes("_bucket"))
            .join("\n"),
        );
        for await (const si of jsm.streams.list()) {
          console.log(
            "stream",
            si.config.name,
            si.config.num_replicas,
            JSON.stringify(si.cluster),
            si.state.last_seq,
          );
        }
        for await (const ci of jsm.consumers.list("RECO_HOPS")) {
          console.log(
            "consumer",
            ci.name,
            ci.config.num_replicas,
            JSON.stringify(ci.cluster),
            ci.delivered.stream_seq,
            ci.num_pending,
            ci.num_waiting,
          );
        }
        console.log("gateway", gateway.out().slice(-2000));
        // Every hop (small here), to tell post mortem which stage or replica holds what.
        const last = (await jsm.streams.info("RECO_HOPS")).state.last_seq;
        const hops: string[] = [];
        for (let seq = 1; seq <= last; seq++) {
          const m = await jsm.streams.getMessage("RECO_HOPS", { seq }).catch(() => undefined);
          if (!m) continue;
          const env = decodeEnvelope<unknown>(m.data);
          const id = m.header?.get("Nats-Msg-Id") ?? "";
          hops.push(JSON.stringify({ seq, subject: m.subject, id, ...env }));
        }
        writeFileSync(join(process.env.CLUSTER_DEBUG, "hops.jsonl"), hops.join("\n"));
        writeFileSync(
          join(process.env.CLUSTER_DEBUG, "wrong.json"),
          JSON.stringify(
            await Promise.all(
              wrong.map(async (u) => ({
                u,
                expected: expected(u),
                got: await client
                  .getRecommendations(u, 10)
                  .then((r) => simplify(r.items))
                  .catch(String),
              })),
            ),
          ),
        );
      }
      const sample = wrong.slice(0, 3);
      const got = await Promise.all(
        sample.map((u) => client.getRecommendations(u, 10).then((r) => simplify(r.items))),
      );
      expect(sample.map((u, k) => [u, got[k]])).toEqual(sample.map((u) => [u, expected(u)]));
      expect(wrong).toEqual([]);
      const res = await client.getRecommendations(users[0]!, 5);
      expect(Number(res.stalenessMs)).toBeLessThan(60_000);
    },
  );
});
