import { afterEach, describe, expect, it } from "vitest";
import { AckPolicy, connect, type NatsConnection } from "nats";
import { covisitLayout, LayoutMismatchError } from "../connectors/nats/engine-layout.js";
import { ensureTopology, STREAMS } from "../connectors/nats/topology.js";
import { ConfigError, loadConfig } from "../bin/config.js";
import { deploymentCovisit } from "../bin/covisit-layout.js";
import { newCovisitPartitions } from "../bin/pipeline/config.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/**
 * Co-visitation's item partitions are the deployment's: recorded by its first process in the
 * engine's KV bucket, read by every later one, and a COVISIT_PARTITIONS that differs fails the
 * start naming the setting (the neighbour lists are partitioned by it).
 */
describe("co-visitation's item partitions, per deployment", () => {
  let nats: TestNats | undefined;
  const conns: NatsConnection[] = [];
  afterEach(async () => {
    for (const c of conns.splice(0)) await c.close();
    await nats?.cleanup();
    nats = undefined;
  });
  const client = async () => {
    nats ??= await setupNats();
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    return nc;
  };

  it("a new deployment records 2 (fewer with fewer partitions), and keeps it", async () => {
    expect([1, 2, 3, 8].map(newCovisitPartitions)).toEqual([1, 2, 2, 2]);
    const nc = await client();
    expect(await covisitLayout(nc, { fresh: 2 })).toEqual({ partitions: 2, from: "new" });
    // A later process, whatever its own default, reads the deployment's.
    const other = await client();
    expect(await covisitLayout(other, { fresh: 1 })).toEqual({ partitions: 2, from: "stored" });
    expect(await covisitLayout(other, { fresh: 8, setting: 2 })).toEqual({
      partitions: 2,
      from: "stored",
    });
  });

  it("fails a start whose COVISIT_PARTITIONS differs, naming the setting", async () => {
    const nc = await client();
    expect((await covisitLayout(nc, { fresh: 2, setting: 4 })).partitions).toBe(4);
    await expect(covisitLayout(nc, { fresh: 2, setting: 3 })).rejects.toThrow(LayoutMismatchError);
    const cfg = loadConfig({ COVISIT_PARTITIONS: "2", PARTITIONS: "8" });
    expect(cfg.pipeline.covisitPartitions).toBe(2);
    const err = await deploymentCovisit(nc, cfg).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/^COVISIT_PARTITIONS=2 does not match .* 4 /);
    // Unset, the deployment's holds.
    expect(await deploymentCovisit(nc, loadConfig({ PARTITIONS: "8" }))).toBe(4);
    expect(() => loadConfig({ COVISIT_PARTITIONS: "0" })).toThrow(/COVISIT_PARTITIONS="?0"?/);
  });

  it("a deployment that ran before the layout was recorded keeps its covisit consumers' partitions", async () => {
    const nc = await client();
    const jsm = await nc.jetstreamManager();
    await ensureTopology(nc, jsm, {});
    // What an app with 8 item partitions left: a consumer per covisit instance.
    for (const q of [0, 3, 7])
      await jsm.consumers.add(STREAMS.hops, {
        durable_name: `covisit-${q}`,
        filter_subject: `reco.pairs.${q}.*`,
        ack_policy: AckPolicy.Explicit,
      });
    expect(await covisitLayout(nc, { fresh: 2 })).toEqual({ partitions: 8, from: "consumers" });
    expect(await covisitLayout(nc, { fresh: 2 })).toEqual({ partitions: 8, from: "stored" });
  });

  it("processes starting together agree on one", async () => {
    await client();
    const all = await Promise.all(
      [1, 2, 3, 5].map(
        async (fresh) => (await covisitLayout(await client(), { fresh })).partitions,
      ),
    );
    expect(new Set(all).size).toBe(1);
  });
});
