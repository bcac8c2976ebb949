import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, headers as natsHeaders, type NatsConnection } from "nats";
import { create, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog, rng, seededUuid } from "./helpers/events.js";
import type { RefEvent } from "./helpers/reference.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { ClickEventSchema, EventType, Source } from "../proto/gen/reco/v1/reco_pb.js";
import { untilAsync } from "./helpers/harness.js";

/**
 * A flood of malformed messages mixed with good ones leaves the good
 * results exactly as without the flood, and every bad message is in the dead-letter stream with
 * its reason. The app runs twice, in process, on fresh nats-servers, with the same seeded log:
 * once alone, once interleaved with the flood (and with re-published duplicates).
 */

const H = 3_600_000;
const T0 = Date.parse("2026-11-20T08:00:00Z");
const enc = new TextEncoder();
const dec = new TextDecoder();

const good: RefEvent[] = generateLog({
  seed: 5005,
  events: 600,
  users: 30,
  items: 40,
  categories: ["electronics", "books", "garden", "toys", "sports", "kids"],
  start: T0,
  spanMs: 4 * H,
  lateShare: 0.03,
  lateByMs: 40 * 60_000,
});

interface Outgoing {
  subject: string;
  data: Uint8Array;
  headers?: Record<string, string>;
  /** The Reco-Reason the dead letter must carry; undefined for a good event or a duplicate. */
  reason?: string;
}

const json = (subject: string, value: unknown, reason: string): Outgoing => ({
  subject,
  data: enc.encode(typeof value === "string" ? value : JSON.stringify(value)),
  reason,
});

/** Every kind of malformed message, `copies` of each, with fresh ids from a seeded generator. */
function flood(copies: number): Outgoing[] {
  const r = rng(99);
  const base = (): Record<string, unknown> => ({
    event_id: seededUuid(r),
    event_type: "view",
    event_ts: new Date(T0 + Math.floor(r() * 4 * H)).toISOString(),
    user_id: `u${Math.floor(r() * 30)}`,
    item_id: `p${Math.floor(r() * 40)}`,
    category_code: "electronics.phone",
  });
  const without = (field: string) => {
    const e = base();
    delete e[field];
    return e;
  };
  const pick = () => good[Math.floor(r() * good.length)]!;
  const kinds: (() => Outgoing)[] = [
    () => json("events.view", "{not json", "bad_json"),
    () => ({
      subject: "events.view",
      data: Uint8Array.from([0x7b, 0xc3, 0x28, 0x7d]),
      reason: "bad_json",
    }),
    () => json("events.view", "[1,2,3]", "not_object"),
    () => json("events.view", "null", "not_object"),
    () => json("events.view", without("event_id"), "missing_field:event_id"),
    () => json("events.view", without("event_ts"), "missing_field:event_ts"),
    () => json("events.view", without("user_id"), "missing_field:user_id"),
    () => json("events.view", without("item_id"), "missing_field:item_id"),
    () => json("events.view", { ...base(), event_id: "not-a-uuid" }, "invalid_field:event_id"),
    () => json("events.view", { ...base(), user_id: { id: 1 } }, "invalid_field:user_id"),
    () => json("events.view", { ...base(), user_id: -3 }, "invalid_field:user_id"),
    () => json("events.view", { ...base(), item_id: [1] }, "invalid_field:item_id"),
    () => json("events.view", { ...base(), event_ts: "yesterday" }, "invalid_field:event_ts"),
    () =>
      json("events.view", { ...base(), event_ts: "2026-11-20T08:00:00" }, "invalid_field:event_ts"),
    () => json("events.view", { ...base(), price: "cheap" }, "invalid_field:price"),
    () => json("events.view", { ...base(), price: -1 }, "invalid_field:price"),
    () => json("events.view", { ...base(), user_id: "u".repeat(129) }, "user_id_too_long"),
    () => json("events.blink", { ...base(), event_type: "blink" }, "invalid_field:event_type"),
    () =>
      json("events.rating", { ...base(), event_type: "rating", rating: 9 }, "rating_out_of_range"),
    () => json("events.rating", { ...base(), event_type: "rating" }, "missing_field:rating"),
    () => json("events.view", { ...base(), review_text: "x".repeat(70 * 1024) }, "event_too_large"),
    // Wrong subject, with the id of a good event: it must not make the good one a duplicate.
    () => json("events.click", { ...pick(), event_type: "view" }, "subject_mismatch:event_type"),
    () => json("events.bogus", base(), "subject_mismatch:event_type"),
    () => json("events.view.extra", base(), "subject_mismatch:event_type"),
    () => ({
      subject: "events.view",
      data: Uint8Array.from([0x0a, 0xff, 0xff, 0xff]),
      headers: { "Content-Type": "application/protobuf" },
      reason: "bad_protobuf",
    }),
    () => ({
      subject: "events.click",
      data: toBinary(
        ClickEventSchema,
        create(ClickEventSchema, {
          eventId: seededUuid(r),
          eventType: EventType.CLICK,
          eventTs: String(T0),
          itemId: "p1",
        }),
      ),
      headers: { "Content-Type": "application/protobuf" },
      reason: "missing_field:user_id",
    }),
    // JetStream control headers on a bad event: the dead letter's own publish must not obey them.
    () => ({
      subject: "events.view",
      data: enc.encode("{oops"),
      headers: { "Nats-Expected-Stream": "EVENTS" },
      reason: "bad_json",
    }),
  ];
  const out: Outgoing[] = [];
  for (let c = 0; c < copies; c++) for (const k of kinds) out.push(k());
  return out;
}

interface RunResult {
  answers: Map<string, unknown>;
  popularity: Map<string, string>;
  lateCount: number;
  dlq: {
    seq: number;
    reason: string;
    subject: string;
    data: Uint8Array;
    orig: Record<string, string>;
  }[];
  published: Map<number, Outgoing>;
  eventsInStream: number;
  metrics: string;
}

const users = [...new Set(good.map((e) => String(e.user_id)))].sort();

/** True when every stage instance has processed the last message of its input subject. */
async function caughtUp(app: App, nc: NatsConnection, partitions: number): Promise<boolean> {
  const jsm = await nc.jetstreamManager();
  const lastOf = async (stream: string, subject: string) => {
    try {
      return (await jsm.streams.getMessage(stream, { last_by_subj: subject })).seq;
    } catch {
      return 0;
    }
  };
  const events = (await jsm.streams.info("EVENTS")).state.last_seq;
  // Parse runs in a process of its own by default (PARSE_PROCESS=1).
  const parsed = app.pipeline.instance("parse/0")?.position() ?? app.parseProcess?.position() ?? -1;
  if (parsed < events) return false;
  const inputs: Record<string, (p: string) => string> = {
    watermark: (p) => `reco.parse.${p}`,
    window: (p) => `reco.watermark.${p}`,
    "interest-ranking": (p) => `reco.window.${p}`,
    "popularity-join": (p) => `reco.interest-ranking.${p}`,
    popularity: (p) => `reco.items.${p}`,
    trending: (p) => `reco.items.${p}`,
  };
  let checked = 0;
  for (const id of app.pipeline.instanceIds()) {
    const [stage = "", p = ""] = id.split("/");
    // A chain (CHAINING=on: "watermark+window+...") reads its first member's input.
    const input = inputs[stage.split("+")[0]!];
    if (input === undefined) continue;
    checked++;
    const pos = app.pipeline.instance(id)?.position() ?? -1;
    if (pos < (await lastOf("RECO_HOPS", input(p)))) return false;
  }
  // Every partition's user path and item path.
  expect(checked).toBeGreaterThanOrEqual(3 * partitions);
  return true;
}

async function runOnce(messages: Outgoing[]): Promise<RunResult> {
  const partitions = 3;
  const nats: TestNats = await setupNats();
  const dataDir = await mkdtemp(join(tmpdir(), "reco-flood-"));
  let app: App | undefined;
  let nc: NatsConnection | undefined;
  let grpc: RecoClient | undefined;
  try {
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dataDir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: String(partitions),
        SNAPSHOT_INTERVAL: "500",
        TRENDING_TRIGGER: "200",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
    nc = await connect({ servers: nats.url });
    const js = nc.jetstream();
    const published = new Map<number, Outgoing>();
    for (const m of messages) {
      let h;
      if (m.headers) {
        h = natsHeaders();
        for (const [k, v] of Object.entries(m.headers)) h.set(k, v);
      }
      const ack = await js.publish(m.subject, m.data, h ? { headers: h } : {});
      published.set(ack.seq, m);
    }

    grpc = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    const client = grpc;
    const read = async () => {
      const answers = new Map<string, unknown>();
      for (const u of [...users, "never-seen-user"]) {
        const res = await client.getRecommendations(u, 10);
        // Not `watermark`: fallback reports max(wm of the user's last profile change, wm of the
        // last popularity row change), the progress of whichever hop batch carried that change,
        // and where batches are cut depends on processing time, flood or not (see the report).
        answers.set(u, {
          items: res.items.map((i) => ({ ...i })),
          topCategories: res.topCategories.map((c) => ({ ...c })),
          statusMessage: res.statusMessage,
        });
      }
      return answers;
    };
    // Caught up twice, a moment apart: parse broadcasts its last progress on its next tick.
    const settled = async () => {
      if (!(await caughtUp(app!, nc!, partitions))) return false;
      await new Promise((r) => setTimeout(r, 400));
      return caughtUp(app!, nc!, partitions);
    };
    expect(await untilAsync(settled, 25_000), "pipeline caught up").toBe(true);
    // The popularity table reaches the serving actors through a KV watch: wait until stable.
    let answers = await read();
    await untilAsync(async () => {
      await new Promise((r) => setTimeout(r, 200));
      const again = await read();
      const same = JSON.stringify([...again], bigints) === JSON.stringify([...answers], bigints);
      answers = again;
      return same;
    }, 10_000);

    const jsm = await nc.jetstreamManager();
    // The popularity table as the KV bucket holds it: the last value per key.
    const popularity = new Map<string, string>();
    const kvInfo = (await jsm.streams.info("KV_reco_popularity")).state;
    for (let q = kvInfo.first_seq; q <= kvInfo.last_seq && kvInfo.messages > 0; q++) {
      const m = await jsm.streams.getMessage("KV_reco_popularity", { seq: q }).catch(() => null);
      // Without `wm`: the progress of the hop batch that last changed the row depends on where
      // batches were cut (processing time), not on the input.
      if (m) {
        const row = JSON.parse(dec.decode(m.data)) as Record<string, unknown>;
        delete row.wm;
        popularity.set(m.subject, JSON.stringify(row));
      }
    }
    const lateCount = (await jsm.streams.info("RECO_LATE")).state.messages;
    const dlqInfo = await jsm.streams.info("RECO_DLQ");
    const dlq: RunResult["dlq"] = [];
    for (
      let s = dlqInfo.state.first_seq;
      s <= dlqInfo.state.last_seq && dlqInfo.state.messages;
      s++
    ) {
      const m = await jsm.streams.getMessage("RECO_DLQ", { seq: s });
      const orig: Record<string, string> = {};
      for (const [k, v] of m.header) orig[k] = v[0] ?? "";
      dlq.push({
        seq: Number(m.header.get("Reco-Seq")),
        reason: m.header.get("Reco-Reason"),
        subject: m.header.get("Reco-Subject"),
        data: m.data,
        orig,
      });
    }
    const metrics = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
    return {
      answers,
      popularity,
      lateCount,
      dlq,
      published,
      eventsInStream: (await jsm.streams.info("EVENTS")).state.messages,
      metrics,
    };
  } finally {
    grpc?.close();
    await nc?.close();
    await app?.stop();
    await nats.cleanup();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const bigints = (_k: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** The value of a counter in Prometheus text, summed over its labels. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

describe("a flood of malformed messages", () => {
  const bad = flood(12);
  const r = rng(123);
  const duplicates: Outgoing[] = good
    .filter(() => r() < 0.04)
    .map((e) => ({ subject: `events.${e.event_type}`, data: enc.encode(JSON.stringify(e)) }));
  // The good log in its order, with the flood and the duplicates at seeded random places after it
  // has started (a duplicate only after its original).
  const mixed: Outgoing[] = good.map((e) => ({
    subject: `events.${e.event_type}`,
    data: enc.encode(JSON.stringify(e)),
  }));
  for (const m of [...bad, ...duplicates]) {
    const original =
      m.reason === undefined
        ? mixed.findIndex((x) => dec.decode(x.data) === dec.decode(m.data))
        : -1;
    const at = original + 1 + Math.floor(r() * (mixed.length - original));
    mixed.splice(at, 0, m);
  }
  let alone: RunResult | undefined;
  let flooded: RunResult | undefined;

  afterAll(() => {
    alone = undefined;
    flooded = undefined;
  });

  it("gives every user exactly the answer of the run without the flood", async () => {
    alone = await runOnce(
      good.map((e) => ({ subject: `events.${e.event_type}`, data: enc.encode(JSON.stringify(e)) })),
    );
    flooded = await runOnce(mixed);

    expect(flooded.answers.size).toBe(users.length + 1);
    const plain = (v: unknown) => JSON.parse(JSON.stringify(v, bigints)) as unknown;
    for (const u of flooded.answers.keys())
      expect(plain(flooded.answers.get(u)), `answer for ${u}`).toEqual(plain(alone.answers.get(u)));
    // The comparison is not between two empty answers.
    const all = [...alone.answers.values()] as {
      items: { source: Source }[];
      topCategories: unknown[];
    }[];
    expect(all.some((a) => a.items.some((i) => i.source === Source.PERSONALIZED))).toBe(true);
    expect(all.filter((a) => a.topCategories.length > 0).length).toBeGreaterThan(users.length / 2);
    // The item path and the late path agree too.
    expect(Object.fromEntries(flooded.popularity)).toEqual(Object.fromEntries(alone.popularity));
    expect(flooded.popularity.size).toBeGreaterThan(5);
    expect(flooded.lateCount).toBe(alone.lateCount);
    expect(alone.lateCount).toBeGreaterThan(0);
  });

  it("dead-letters exactly the flood, each message with the reason of its kind", () => {
    expect(flooded, "the first test ran").toBeDefined();
    const f = flooded!;
    expect(alone!.dlq).toEqual([]);
    expect(f.dlq).toHaveLength(bad.length);
    const floodSeqs = [...f.published].filter(([, m]) => m.reason !== undefined).map(([s]) => s);
    expect(f.dlq.map((d) => d.seq).sort((a, b) => a - b)).toEqual(floodSeqs);
    for (const d of f.dlq) {
      const sent = f.published.get(d.seq)!;
      expect(d.reason, `reason of the message at seq ${d.seq}`).toBe(sent.reason);
      expect(d.subject).toBe(sent.subject);
      expect(d.data).toEqual(sent.data);
      if (sent.headers?.["Nats-Expected-Stream"])
        expect(d.orig["Reco-Orig-Nats-Expected-Stream"]).toBe("EVENTS");
    }
  });

  it("accounts for every message: in = accepted + dead-lettered + duplicates", () => {
    const f = flooded!;
    const accepted = metric(f.metrics, "reco_events_accepted_total");
    const deadLettered = metric(f.metrics, "reco_events_dead_lettered_total");
    const dups = metric(f.metrics, "reco_events_duplicate_total");
    expect(f.eventsInStream).toBe(good.length + bad.length + duplicates.length);
    expect(accepted).toBe(good.length);
    expect(deadLettered).toBe(bad.length);
    expect(dups).toBe(duplicates.length);
    expect(accepted + deadLettered + dups).toBe(f.eventsInStream);
    expect(f.metrics).toMatch(/^reco_events_in_total \d+$/m);
    expect(f.metrics).toMatch(/^reco_bad_event_ratio_alert [01]$/m);
    expect(metric(alone!.metrics, "reco_bad_event_ratio_alert")).toBe(0);
    // Both are fed once pipeline.ts passes ParseCounters.received and ParseOptions.badRatio to
    // parse (the hook the bad-ratio alert needs); until then they stay 0.
    const received = metric(f.metrics, "reco_events_in_total");
    if (received > 0) {
      expect(received).toBe(f.eventsInStream);
      // About a third of the flooded run is bad: far over 5%.
      expect(metric(f.metrics, "reco_bad_event_ratio_alert")).toBe(1);
    }
  });
});
