import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog, rng, seededUuid } from "./helpers/events.js";
import { reference, type RefEvent } from "./helpers/reference.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import { poller } from "./helpers/harness.js";

/*
 * One message must not break event time or a partition. The whole
 * app (parse in its own process, as `reco start` runs it) reads a seeded log with, in its middle,
 * an event dated 9999-12-31, a forged idle marker for year 9999, a purchase with a 10,240-char
 * item_id, and an event of 1,048,570 bytes; and a purchase of an item whose id has characters
 * KV keys do not allow. Every user's answer must be the reference's for the good events, every
 * bad message must be in the DLQ once with its reason, and the counters must match the streams.
 */

const H = 3_600_000;
const T0 = Date.parse("2026-11-20T08:00:00Z");
const enc = new TextEncoder();
const dec = new TextDecoder();

const r = rng(1717);
const good: RefEvent[] = generateLog({
  seed: 1717,
  events: 400,
  users: 25,
  items: 30,
  categories: ["electronics", "books", "garden", "toys", "sports"],
  start: T0,
  spanMs: 3 * H,
  lateShare: 0,
  lateByMs: 0,
});
/** Valid: an id KV keys cannot hold as it is (space, wildcards, dots, slash, non-ASCII). */
const ODD_ITEM = "a b*>.ü😀/x";
const odd: RefEvent[] = Array.from({ length: 15 }, (_, k) => ({
  event_id: seededUuid(r),
  event_type: "purchase",
  event_ts: new Date(T0 + k * 60_000).toISOString(),
  user_id: `odd-buyer-${k}`,
  item_id: ODD_ITEM,
  category_code: "electronics.phone",
  price: 10,
}));
const base = () => ({
  event_id: seededUuid(r),
  event_type: "purchase",
  event_ts: new Date(T0 + H).toISOString(),
  user_id: "attacker",
  item_id: "p1",
  category_code: "electronics.phone",
});
// A body of exactly `size` bytes: the event padded with a long brand.
const sized = (size: number) => {
  const e = { ...base(), event_type: "view", brand: "" };
  const pad = size - enc.encode(JSON.stringify(e)).length;
  return enc.encode(JSON.stringify({ ...e, brand: "b".repeat(pad) }));
};
const killers: { subject: string; data: Uint8Array; reason: string }[] = [
  {
    subject: "events.purchase",
    data: enc.encode(JSON.stringify({ ...base(), event_ts: "9999-12-31T23:59:59Z" })),
    reason: "event_ts_in_future",
  },
  {
    subject: "events._idle",
    data: enc.encode(JSON.stringify({ progress: Date.UTC(9999, 11, 31), after: 1 })),
    reason: "idle_marker_unsigned",
  },
  {
    subject: "events.purchase",
    data: enc.encode(JSON.stringify({ ...base(), item_id: "x".repeat(10_240) })),
    reason: "field_too_long:item_id",
  },
  { subject: "events.view", data: sized(1_048_570), reason: "event_too_large" },
];

const eventually = poller({ ms: 30_000, everyMs: 200 });

/** The value of a metric in Prometheus text, summed over its labels. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n"))
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  return sum;
}

const simplify = (items: { itemId: string; score: number; source: Source }[]) =>
  items.map((i) => ({
    itemId: i.itemId,
    score: Number(i.score.toFixed(6)),
    source: i.source === Source.PERSONALIZED ? "PERSONALIZED" : "POPULAR_FALLBACK",
  }));

describe("one message cannot break event time or a partition", () => {
  let nats: TestNats;
  let dataDir: string;
  let app: App;
  let nc: NatsConnection;
  let client: RecoClient;
  const log = [...good.slice(0, 200), ...odd, ...good.slice(200)];

  beforeAll(async () => {
    nats = await setupNats();
    dataDir = await mkdtemp(join(tmpdir(), "reco-one-message-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dataDir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "2",
        SNAPSHOT_INTERVAL: "500",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: process.env.DEBUG17 ? "warn" : "silent",
      }),
      pino({ level: process.env.DEBUG17 ? "warn" : "silent" }),
    );
    nc = await connect({ servers: nats.url });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    const js = nc.jetstream();
    for (const e of log.slice(0, 150))
      await js.publish(`events.${e.event_type}`, JSON.stringify(e));
    for (const k of killers) await js.publish(k.subject, k.data);
    for (const e of log.slice(150)) await js.publish(`events.${e.event_type}`, JSON.stringify(e));
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("gives every user the reference's answer for the good events", async () => {
    const ref = reference(log);
    const users = [...new Set(log.map((e) => String(e.user_id)))].sort();
    for (const u of users) {
      const expected = ref
        .recommend(u, 10)
        .map((i) => ({ ...i, score: Number(i.score.toFixed(6)) }));
      const res = await eventually(
        () => client.getRecommendations(u, 10),
        (v) => JSON.stringify(simplify(v.items)) === JSON.stringify(expected),
      );
      expect(simplify(res.items), `recommendations of ${u}`).toEqual(expected);
    }
    expect(users.filter((u) => ref.recommend(u, 10).length > 0)).toHaveLength(users.length);
    // The odd id went through the popularity table (a base64url KV key) and is served.
    expect(ref.recommend("never-seen", 10).map((i) => i.itemId)).toContain(ODD_ITEM);
  }, 90_000);

  it("dead-letters each bad message once, with its reason; the too-large one truncated", async () => {
    const jsm = await nc.jetstreamManager();
    const info = await eventually(
      () => jsm.streams.info("RECO_DLQ"),
      (i) => i.state.messages >= killers.length,
    );
    expect(info.state.messages).toBe(killers.length);
    const got = new Map<string, { data: Uint8Array; h: (k: string) => string }>();
    for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
      const m = await jsm.streams.getMessage("RECO_DLQ", { seq: s });
      expect(m.subject).toBe("reco.dlq.parse");
      got.set(m.header.get("Reco-Reason"), { data: m.data, h: (k) => m.header.get(k) });
    }
    expect([...got.keys()].sort()).toEqual(killers.map((k) => k.reason).sort());
    for (const k of killers) {
      const d = got.get(k.reason)!;
      expect(d.h("Reco-Subject")).toBe(k.subject);
      if (k.reason === "event_too_large") {
        expect(d.h("Reco-Truncated")).toBe("true");
        expect(d.h("Reco-Original-Size")).toBe("1048570");
        expect(d.data.length).toBeGreaterThan(1_000_000);
        // Buffer.equals: toEqual on a megabyte array takes ~20 s.
        expect(Buffer.from(d.data).equals(k.data.subarray(0, d.data.length))).toBe(true);
      } else {
        expect(dec.decode(d.data)).toBe(dec.decode(k.data));
        expect(d.h("Reco-Truncated")).toBe("");
      }
    }
  }, 60_000);

  it("keeps event time, stages and counters true to the streams", async () => {
    const jsm = await nc.jetstreamManager();
    const dlq = (await jsm.streams.info("RECO_DLQ")).state.messages;
    const text = await eventually(
      async () => (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text(),
      (t) => metric(t, "reco_events_dead_lettered_total") >= dlq,
    );
    expect(metric(text, "reco_events_dead_lettered_total")).toBe(dlq);
    expect(metric(text, "reco_dlq_poison_total")).toBe(0);
    // The count kept with parse's snapshot too (exact across restarts).
    const kept = text
      .split("\n")
      .find(
        (l) =>
          l.startsWith("reco_stage_count{") &&
          /stage="parse"/.test(l) &&
          /name="dead_letter"/.test(l),
      );
    expect(Number(kept?.slice(kept.lastIndexOf(" ") + 1))).toBe(dlq);
    expect(metric(text, "reco_stage_restarts_total")).toBe(0);
    // Event time is the latest good event's, not year 9999.
    const latest = Math.max(...log.map((e) => Date.parse(String(e.event_ts))));
    expect(metric(text, "reco_event_time_progress_ms")).toBe(latest);
  }, 60_000);
});
