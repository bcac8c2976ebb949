import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { pino } from "pino";
import { setupNats } from "./helpers/nats.js";
import { rng, seededUuid } from "./helpers/events.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";

/*
 * Valid events whose ids, category and
 * brand are at their length limits and made of characters JSON escapes (6 bytes each) make
 * records of ~5.5 KB; a backlog of them filled parse's hops with up to B = 1,000 records, over 5
 * MB, which nats-server refuses (max_payload 1 MiB): parse failed at every snapshot, for ever. Parse
 * now tells the host an upper bound of each record's size, and a hop is cut before it nears the
 * limit.
 */

const T0 = Date.parse("2026-11-21T08:00:00Z");
const N = 1000;
const ctl = (n: number, tag: string) => "\u0001".repeat(n - tag.length) + tag;

function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

describe("events at the field limits, in a backlog", () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  });

  it("flow through parse in hops the server takes: no restart, every event accepted", async () => {
    const nats = await setupNats();
    cleanups.push(() => nats.cleanup());
    const nc = await connect({ servers: nats.url });
    cleanups.push(() => nc.close());
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "EVENTS", subjects: ["events.>"] });
    const r = rng(17);
    for (let k = 0; k < N; k++) {
      const e = {
        event_id: seededUuid(r),
        event_type: "purchase",
        event_ts: new Date(T0 + k * 1000).toISOString(),
        user_id: ctl(128, `u${k % 50}`),
        item_id: ctl(256, `i${k % 40}`),
        category_code: ctl(256, `c${k % 5}`),
        brand: ctl(256, "b"),
        price: 1,
      };
      await js.publish("events.purchase", JSON.stringify(e));
    }
    const dataDir = await mkdtemp(join(tmpdir(), "reco-hop-size-"));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const app: App = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dataDir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "1",
        PARSE_PROCESS: "0",
        SNAPSHOT_INTERVAL: "500",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
    cleanups.push(() => app.stop());
    const scrape = async () => (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
    const until = Date.now() + 30_000;
    let text = await scrape();
    while (Date.now() < until && metric(text, "reco_events_accepted_total") < N) {
      await new Promise((res) => setTimeout(res, 200));
      text = await scrape();
    }
    // A refused hop shows at the next snapshot (its acks are awaited there): let a few pass.
    await new Promise((res) => setTimeout(res, 1500));
    text = await scrape();
    expect(metric(text, "reco_events_accepted_total")).toBe(N);
    expect(metric(text, "reco_stage_restarts_total")).toBe(0);
    expect(metric(text, "reco_stage_errors_total")).toBe(0);
    expect((await jsm.streams.info("RECO_DLQ")).state.messages).toBe(0);
    // The purchases reached popularity: its table holds the 40 items.
    const kv = await jsm.streams.info("KV_reco_popularity", {
      subjects_filter: "$KV.reco_popularity.>",
    });
    expect(Object.keys(kv.state.subjects ?? {}).filter((s) => s.includes(".b."))).toHaveLength(40);
  }, 60_000);
});
