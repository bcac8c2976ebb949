import { describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { replayFile } from "../bin/replay/run.js";
import { consumerInfos } from "../connectors/nats/streams.js";
import { STREAMS } from "../connectors/nats/topology.js";
import { startTestApp } from "./helpers/app.js";
import { useCleanups } from "./helpers/harness.js";
import { setupNats } from "./helpers/nats.js";
import { REES46_HEAD } from "./helpers/snapshot-bytes.js";

/**
 * The running engine reads each partition's hops once: one consumer per partition for parse's
 * user-keyed hops (the user path's chain, history, drift and collaborative read it) and one for
 * its item-keyed hops (catalogue, popularity and trending), none per stage instance.
 */

const LOG = REES46_HEAD;

describe("the engine's inputs of a partition's hops", () => {
  const cleanups = useCleanups();

  it("are one consumer per partition and key, and the engine reads the whole log", async () => {
    const nats = await setupNats();
    cleanups.add(() => nats.cleanup());
    const dir = await mkdtemp(join(tmpdir(), "reco-shared-input-"));
    cleanups.add(() => rm(dir, { recursive: true, force: true }));
    const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, 1001);
    const file = join(dir, "head.csv");
    await writeFile(file, `${lines.join("\n")}\n`);
    const app = await startTestApp(nats.url, dir, { PARTITIONS: "2" });
    cleanups.add(() => app.stop());
    const s = await replayFile({
      file,
      natsUrl: nats.url,
      awaitEngineMs: 120_000,
      metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
    });
    expect(s.engine?.caughtUp, s.engine?.note).toBe(true);
    const nc = await connect({ servers: nats.url });
    cleanups.add(() => nc.close());
    const consumers = await consumerInfos(await nc.jetstreamManager(), STREAMS.hops);
    const names = consumers.map((c) => c.name);
    for (const name of ["in_parse_0", "in_parse_1", "in_items_0", "in_items_1"])
      expect(names).toContain(name);
    // No stage reads those subjects with a consumer of its own.
    const filters = consumers.map((c) => c.config.filter_subject);
    for (const subject of ["reco.parse.0", "reco.parse.1", "reco.items.0", "reco.items.1"])
      expect(filters.filter((f) => f === subject)).toHaveLength(1);
    // Everything delivered is acked once every reader has it (the last of each reader's
    // messages at its next snapshot).
    const jsm = await nc.jetstreamManager();
    const unacked = async () =>
      (await consumerInfos(jsm, STREAMS.hops))
        .filter((c) => c.name.startsWith("in_") && c.num_ack_pending > 0)
        .map((c) => `${c.name}: ${c.num_ack_pending} not acked`);
    let left = await unacked();
    for (let end = Date.now() + 15_000; left.length > 0 && Date.now() < end; left = await unacked())
      await new Promise((r) => setTimeout(r, 250));
    expect(left).toEqual([]);
  }, 180_000);
});
