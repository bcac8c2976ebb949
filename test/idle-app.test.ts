import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { IDLE_SUBJECT, readIdleMarker } from "../actors/stages/index.js";
import { HOUR, MINUTE } from "../actors/contract/index.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { TrendingWindow } from "../proto/gen/reco/v1/reco_pb.js";
import { enc, uuid } from "./helpers/idle-parse.js";

/*
 * When the whole input goes quiet, parse moves event time on with idle markers written into
 * EVENTS. The whole app: a quiet input closes its last 1 h trending window, while a steady input
 * moves event time only through its events.
 */

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
