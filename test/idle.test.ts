import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AckPolicy, connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { createStageState, type StageStateInternal } from "../state/store.js";
import type { InputMessage } from "../actors/host/index.js";
import { consumerProbe } from "../connectors/nats/source.js";
import {
  IDLE_SUBJECT,
  readIdleMarker,
  type ConsumerView,
  type ParseOptions,
} from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { TrendingWindow } from "../proto/gen/reco/v1/reco_pb.js";
import { fakeOutput, type RawCall } from "./helpers/stage.js";

/*
 * When the whole input goes quiet, parse moves event time on
 * with idle markers written into EVENTS, decided from the server's view of its consumer (pending
 * count, delivered and acknowledged sequences, a waiting pull) and never from a timer alone. Unit
 * tests of the parse handler with an injected clock and a fake probe; then a test of the probe
 * against nats-server; then the whole app: a quiet input closes its last 1 h trending window.
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2026, 10, 21, 10, 0, 0);
const TIMEOUT = 30_000;
/** The engine's idle-marker key (only markers it signed count). */
const MARKER_KEY = enc.encode("a test key of the engine");

let idCounter = 0;
const uuid = () => `00000000-0000-4000-8000-${(++idCounter).toString(16).padStart(12, "0")}`;

function eventMsg(seq: number, ts: number, type = "view"): InputMessage {
  const ev = { event_id: uuid(), event_type: type, event_ts: ts, user_id: "u1", item_id: "p1" };
  return { seq, subject: `events.${type}`, data: enc.encode(JSON.stringify(ev)), headers: {} };
}

/** A parse handler on an injected clock, with a probe that answers what the test says. */
function setup(opts: Partial<ParseOptions> = {}, state: StageStateInternal = createStageState()) {
  const { out, rec } = fakeOutput();
  let now = 1_000_000;
  let server: ConsumerView | Error = { pending: 0, delivered: 0, ackFloor: 0, waiting: 1 };
  let probes = 0;
  let seq = 0;
  const inputs: InputMessage[] = []; // the log as EVENTS holds it
  const h = createParseHandler(state, out, {
    partitions: 2,
    preset: "ecommerce",
    dedupeHorizonMs: 26 * HOUR,
    dedupeMaxIds: 10_000,
    maxEventBytes: 65_536,
    broadcastEveryMs: 100,
    clock: () => now,
    markerKey: MARKER_KEY,
    idle: {
      timeoutMs: TIMEOUT,
      probe: async () => {
        probes++;
        if (server instanceof Error) throw server;
        return { ...server };
      },
    },
    ...opts,
  });
  const t = {
    h,
    rec,
    state,
    get probes() {
      return probes;
    },
    get seq() {
      return seq;
    },
    now: () => now,
    /** The server's answer to the next probes. */
    server(v: Partial<ConsumerView> | Error) {
      server =
        v instanceof Error ? v : { pending: 0, delivered: seq, ackFloor: 0, waiting: 1, ...v };
    },
    inputs,
    /** An event at the next stream sequence; the server has delivered it. */
    event(ts: number) {
      t.input(eventMsg(seq + 1, ts));
    },
    /** Any message at the next stream sequence (a marker read back, say). */
    input(msg: Omit<InputMessage, "seq">) {
      seq++;
      inputs.push({ ...msg, seq });
      h.handle({ ...msg, seq }, 0);
      if (!(server instanceof Error)) server = { ...server, delivered: seq };
    },
    /** Lets processing time pass in ticks of 100 ms, letting probe answers arrive in between. */
    async pass(ms: number) {
      for (let k = 0; k < ms / 100; k++) {
        now += 100;
        h.tick!();
        await new Promise((r) => setImmediate(r));
      }
    },
    markers: () =>
      rec.raws
        .filter((r) => r.subject === IDLE_SUBJECT)
        .map((r) => ({ ...r, body: readIdleMarker(r.data)! })),
  };
  return t;
}

/** Lets a probe's answer reach the handler. */
const answered = () => new Promise((r) => setImmediate(r));

/** A marker as parse reads it back from EVENTS at stream sequence `seq`. */
const markerMsg = (raw: RawCall, seq: number): InputMessage => ({
  seq,
  subject: raw.subject,
  data: raw.data,
  headers: raw.headers,
});

describe("idle markers: caught up and quiet", () => {
  it("appends a marker to EVENTS after IDLE_TIMEOUT_MS without events, with progress + the quiet time", async () => {
    const t = setup();
    t.event(T0);
    t.event(T0 + 5_000);
    await t.pass(TIMEOUT - 1_000);
    expect(t.markers()).toEqual([]);
    await t.pass(1_500);
    const [m, ...more] = t.markers();
    expect(more).toEqual([]);
    expect(m!.subject).toBe("events._idle");
    // Decided after the last message of the stream (sequence 2): valid only at sequence 3.
    expect(m!.msgId).toBe("idle.2");
    expect(m!.body.after).toBe(2);
    // Event time followed processing time from the last event on.
    expect(m!.body.progress).toBeGreaterThanOrEqual(T0 + 5_000 + TIMEOUT);
    expect(m!.body.progress).toBeLessThanOrEqual(T0 + 5_000 + TIMEOUT + 500);
    // Progress moves only when parse reads it back, in log order.
    expect(t.h.progress).toBe(T0 + 5_000);
    t.rec.touches.length = 0;
    t.input(markerMsg(m!, 3));
    expect(t.h.progress).toBe(m!.body.progress);
    expect(t.state.meta.progress).toBe(m!.body.progress);
    expect(t.rec.progress.at(-1)).toBe(m!.body.progress);
    // ... and reaches every partition of both paths, whether it had records or not.
    expect([...t.rec.touches].sort()).toEqual([
      "reco.items.0",
      "reco.items.1",
      "reco.parse.0",
      "reco.parse.1",
    ]);
    expect(t.rec.counts).toEqual({ idle_marker: 1 });
  });

  it("keeps event time following processing time, one marker per IDLE_TIMEOUT_MS", async () => {
    const t = setup();
    t.event(T0);
    const values: number[] = [];
    for (let k = 0; k < 4; k++) {
      const before = t.markers().length;
      const start = t.now();
      while (t.markers().length === before) await t.pass(100);
      const m = t.markers().at(-1)!;
      expect(m.msgId).toBe(`idle.${t.seq}`);
      if (k > 0) expect(t.now() - start).toBeGreaterThanOrEqual(TIMEOUT - 1_000);
      values.push(m.body.progress);
      t.input(markerMsg(m, t.seq + 1));
    }
    // About TIMEOUT apart in event time, as in processing time.
    for (let k = 1; k < values.length; k++) {
      expect(values[k]! - values[k - 1]!).toBeGreaterThanOrEqual(TIMEOUT);
      expect(values[k]! - values[k - 1]!).toBeLessThan(TIMEOUT + 1_500);
    }
    expect(t.h.progress).toBe(values.at(-1));
    // A new event anchors event time again.
    t.event(values.at(-1)! + 1);
    await t.pass(TIMEOUT - 500);
    expect(t.markers()).toHaveLength(4);
  });

  it("asks the server only once input has been quiet for half the timeout", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT / 2 - 200);
    expect(t.probes).toBe(0);
    await t.pass(1_500);
    expect(t.probes).toBeGreaterThan(0);
  });

  it("never appends a marker before the first event, or with IDLE_TIMEOUT_MS 0", async () => {
    const t = setup();
    await t.pass(3 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    const off = setup({ idle: { timeoutMs: 0, probe: () => Promise.reject(new Error("no")) } });
    off.event(T0);
    await off.pass(3 * TIMEOUT);
    expect(off.markers()).toEqual([]);
  });
});

describe("idle markers: a backlogged consumer is never taken for idle", () => {
  it("never while the server holds messages not yet delivered (num_pending > 0), however long", async () => {
    const t = setup();
    t.event(T0);
    t.server({ pending: 5 });
    await t.pass(10 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    expect(t.probes).toBeGreaterThan(100);
  });

  it("never while delivered messages wait unprocessed in the client (a slow stage)", async () => {
    const t = setup();
    t.event(T0);
    t.server({ pending: 0, delivered: t.seq + 300, ackFloor: t.seq });
    await t.pass(10 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    // Once they are processed (the server acks up to them at a snapshot), it may.
    t.server({ pending: 0, delivered: t.seq + 300, ackFloor: t.seq + 300 });
    await t.pass(2_000);
    expect(t.markers().map((m) => m.msgId)).toEqual([`idle.${t.seq + 300}`]);
  });

  it("never without a sign of life: no answer, no waiting pull, or an answer older than the last input", async () => {
    const t = setup();
    t.event(T0);
    t.server(new Error("timeout"));
    await t.pass(3 * TIMEOUT);
    t.server({ waiting: 0 });
    await t.pass(3 * TIMEOUT);
    expect(t.markers()).toEqual([]);
    // The connection comes back: markers again.
    t.server({});
    await t.pass(2_000);
    expect(t.markers()).toHaveLength(1);
  });

  it("never on a timer alone: a probe that never answers blocks it", async () => {
    const t = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => new Promise<ConsumerView>(() => undefined) },
    });
    t.event(T0);
    await t.pass(5 * TIMEOUT);
    expect(t.markers()).toEqual([]);
  });

  it("never on an answer the server gave before the last input arrived", async () => {
    const pending: ((v: ConsumerView) => void)[] = [];
    const t = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => new Promise((r) => pending.push(r)) },
    });
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    expect(pending.length).toBe(1); // one question at a time
    // A bad message arrives after the question: not an event, but input all the same.
    t.input({ subject: "events.view", data: enc.encode("{"), headers: {} });
    pending.shift()!({ pending: 0, delivered: 1, ackFloor: 1, waiting: 1 });
    await answered();
    await t.pass(100);
    expect(t.markers()).toEqual([]);
    // The next answer postdates it.
    await t.pass(1_000);
    pending.shift()!({ pending: 0, delivered: 2, ackFloor: 1, waiting: 1 });
    await answered();
    await t.pass(100);
    expect(t.markers().map((m) => m.msgId)).toEqual(["idle.2"]);
  });

  it("waits for its marker to come back before deciding again", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    expect(t.markers()).toHaveLength(1);
    // The marker is stored but not yet delivered: pending 1.
    t.server({ pending: 1 });
    await t.pass(1.5 * TIMEOUT);
    expect(t.markers()).toHaveLength(1);
  });
});

describe("idle markers in the log: replay reproduces the same progress", () => {
  it("gives a fresh handler that replays the log, markers included, the same outputs and progress", async () => {
    const live = setup();
    live.event(T0);
    live.event(T0 + 1_000);
    await live.pass(TIMEOUT + 1_000);
    const [m1] = live.markers();
    live.input(markerMsg(m1!, 3));
    live.event(T0 + 2_000); // behind the marker's progress: carries it as `wb`
    await live.pass(TIMEOUT + 1_000);
    const [, m2] = live.markers();
    live.input(markerMsg(m2!, 5));
    expect(live.inputs.map((i) => i.subject)).toEqual([
      "events.view",
      "events.view",
      "events._idle",
      "events.view",
      "events._idle",
    ]);
    // A replay reads the same log, at another speed and without asking any server.
    const replay = setup({
      idle: { timeoutMs: TIMEOUT, probe: () => Promise.reject(new Error("offline")) },
    });
    for (const msg of live.inputs) replay.h.handle(msg, 0);
    expect(replay.h.progress).toBe(live.h.progress);
    expect(replay.h.progress).toBe(m2!.body.progress);
    expect(replay.rec.emits).toEqual(live.rec.emits);
    expect(replay.rec.counts).toEqual(live.rec.counts);
    // The event after the first marker carries the marker's progress as its `wb`.
    const afterMarker = live.rec.emits.at(-1)![1] as { wb: number; s: number };
    expect(afterMarker).toMatchObject({ s: 4, wb: m1!.body.progress });
  });

  it("ignores a marker that does not directly follow the message it was decided after", async () => {
    const t = setup();
    t.event(T0);
    await t.pass(TIMEOUT + 1_000);
    const [m] = t.markers();
    // An event raced the decision: it was stored first, the marker lands one sequence later.
    t.event(T0 + 10);
    t.input(markerMsg(m!, t.seq + 1));
    expect(t.h.progress).toBe(T0 + 10);
    expect(t.rec.counts).toEqual({ idle_stale: 1 });
  });

  it("dead-letters a publisher's event on events._idle as subject_mismatch, and counts it as an event", () => {
    const bad: string[] = [];
    let received = 0;
    const t = setup({
      counters: {
        received: (n) => void (received += n),
        accepted: () => undefined,
        duplicate: () => undefined,
        bad: (r) => void bad.push(r),
      },
    });
    const ev = eventMsg(1, T0);
    t.input({ subject: IDLE_SUBJECT, data: ev.data, headers: {} });
    // Not quite a marker: an extra field.
    t.input({
      subject: IDLE_SUBJECT,
      data: enc.encode(JSON.stringify({ progress: T0, after: 1, x: 1 })),
      headers: {},
    });
    expect(bad).toEqual(["subject_mismatch:event_type", "missing_field:event_id"]);
    expect(received).toBe(2);
    expect(t.h.progress).toBe(-1);
    expect(t.rec.raws.map((r) => r.subject)).toEqual(["reco.dlq.parse", "reco.dlq.parse"]);
  });

  it("reads only exact markers", () => {
    const m = (o: unknown) => readIdleMarker(enc.encode(JSON.stringify(o)));
    expect(m({ progress: T0, after: 7 })).toEqual({ progress: T0, after: 7 });
    expect(m({ after: 7, progress: T0 })).toEqual({ progress: T0, after: 7 });
    expect(m({ progress: T0 })).toBeUndefined();
    expect(m({ progress: -1, after: 7 })).toBeUndefined();
    expect(m({ progress: 1.5, after: 7 })).toBeUndefined();
    expect(m({ progress: "1", after: 7 })).toBeUndefined();
    expect(m({ progress: 9e15, after: 7 })).toBeUndefined();
    expect(m([T0, 7])).toBeUndefined();
    expect(readIdleMarker(enc.encode("{"))).toBeUndefined();
  });
});

describe("the consumer probe against nats-server", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
  });

  it("reads pending, delivered, acknowledged and waiting pulls as parse's host leaves them", async () => {
    const jsm = await nc.jetstreamManager();
    await jsm.streams.add({ name: "T", subjects: ["t.>"] });
    await jsm.consumers.add("T", { durable_name: "c_0", ack_policy: AckPolicy.All });
    const js = nc.jetstream();
    for (let k = 0; k < 5; k++) await js.publish("t.x", enc.encode(String(k)));
    const probe = consumerProbe(jsm, "T", "c_0");
    // Backlogged: the server holds all five.
    expect(await probe()).toEqual({ pending: 5, delivered: 0, ackFloor: 0, waiting: 0 });
    // Delivered, not yet acknowledged (the host acks at its snapshots), a pull waiting for more.
    const consumer = await js.consumers.get("T", "c_0");
    const iter = await consumer.consume({ max_messages: 512 });
    const views: ConsumerView[] = [];
    let n = 0;
    for await (const m of iter) {
      if (++n < 5) continue;
      await new Promise((r) => setTimeout(r, 100));
      views.push(await probe());
      m.ack();
      await nc.flush();
      views.push(await probe());
      // Closed inside the loop, which then ends by itself (see NATS-NOTES.md).
      void iter.close();
    }
    expect(views).toEqual([
      { pending: 0, delivered: 5, ackFloor: 0, waiting: 1 },
      { pending: 0, delivered: 5, ackFloor: 5, waiting: 1 },
    ]);
  });
});

describe("a quiet input in the real app (IDLE_TIMEOUT_MS=1000)", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;
  let nc: NatsConnection;
  let client: RecoClient;
  const H0 = Date.UTC(2026, 10, 21, 9, 0, 0);
  beforeAll(async () => {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-idle-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "3",
        IDLE_TIMEOUT_MS: "1000",
        // A 1 h window is final as soon as progress passes its end.
        TRENDING_1H_OUT_OF_ORDERNESS_MS: "0",
        TRENDING_TRIGGER: "200",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: "silent",
        // Parse in this process: the test reads its stats (idle markers) from its instance.
        PARSE_PROCESS: "0",
      }),
      pino({ level: "silent" }),
    );
    nc = await connect({ servers: nats.url });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  });
  afterAll(async () => {
    client?.close();
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const publish = async (events: Record<string, unknown>[]) => {
    const js = nc.jetstream();
    for (const e of events)
      await js.publish(`events.${String(e.event_type)}`, enc.encode(JSON.stringify(e)));
  };
  const ev = (type: string, ts: number, user: string, item: string) => ({
    event_id: uuid(),
    event_type: type,
    event_ts: ts,
    user_id: user,
    item_id: item,
    category_code: "books.novel",
  });
  const markers = async () => {
    const jsm = await nc.jetstreamManager();
    const out: { seq: number; marker: unknown }[] = [];
    const info = await jsm.streams.info("EVENTS");
    for (let s = info.state.first_seq; s <= info.state.last_seq; s++) {
      const m = await jsm.streams.getMessage("EVENTS", { seq: s });
      if (m.subject === IDLE_SUBJECT) out.push({ seq: s, marker: readIdleMarker(m.data) });
    }
    return out;
  };

  it("moves event time on while events keep arriving only through the events", async () => {
    // Events every 300 ms for 3 s: the input is never quiet for IDLE_TIMEOUT_MS.
    for (let k = 0; k < 10; k++) {
      await publish([ev("view", H0 + 10 * MINUTE + k * 1000, "reader", "b1")]);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(await markers()).toEqual([]);
  });

  it("closes the last 1 h window with a final StreamTrending update and moves the watermark on, once quiet", async () => {
    const finals: { start: number; items: [string, number][] }[] = [];
    const stream = client.streamTrending(TrendingWindow.ONE_HOUR, 10);
    const reading = (async () => {
      for await (const u of stream)
        if (u.final)
          finals.push({
            start: Number(u.windowStart?.seconds ?? 0n) * 1000,
            items: u.items.map((i) => [i.itemId, i.score]),
          });
    })().catch(() => undefined);
    // The last events of the input, 3 s of event time before the end of the hour.
    const last = H0 + HOUR - 3_000;
    await publish([
      ev("click", last - 2_000, "reader", "b2"),
      ev("purchase", last - 1_000, "buyer", "b2"),
      ev("view", last, "reader", "b1"),
    ]);
    const watermarkNow = async () => {
      const res = await client.getRecommendations("reader", 5);
      return Number(res.watermark?.seconds ?? 0n) * 1000 + (res.watermark?.nanos ?? 0) / 1e6;
    };
    // The answer reflects the last event first: its progress less 10 min of disorder.
    let wm = 0;
    for (let k = 0; k < 50 && wm < last - 10 * MINUTE; k++) {
      wm = await watermarkNow();
      if (wm < last - 10 * MINUTE) await new Promise((r) => setTimeout(r, 100));
    }
    expect(wm).toBe(last - 10 * MINUTE);
    // Then nothing more arrives: within a few seconds event time passes the end of the hour.
    const until = Date.now() + 15_000;
    while (!finals.some((f) => f.start === H0) && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100));
    stream.cancel();
    await reading;
    const final = finals.find((f) => f.start === H0);
    expect(final, "a final update of the 1 h window").toBeDefined();
    // views × 1, clicks × 2, purchases × 5: b1 viewed 11 times, b2 clicked and bought once.
    expect(final!.items).toEqual([
      ["b1", 11],
      ["b2", 7],
    ]);
    expect(await watermarkNow()).toBeGreaterThan(last - 10 * MINUTE + 2_000);
    // The progress moved through markers in EVENTS, each right after the message it followed.
    const ms = await markers();
    expect(ms.length).toBeGreaterThanOrEqual(3);
    for (const m of ms) expect(m.marker).toMatchObject({ after: m.seq - 1 });
    const stats = app.pipeline.instance("parse/0")!.stats();
    expect(stats.idle_marker).toBe(ms.length);
    expect(stats.idle_stale ?? 0).toBe(0);
    const progress = ms.map((m) => (m.marker as { progress: number }).progress);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    console.log(
      `idle markers: ${ms.length}, event time moved ${progress.at(-1)! - last} ms past the last event`,
    );
  });
});
