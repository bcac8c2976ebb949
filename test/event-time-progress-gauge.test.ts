import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { Registry } from "prom-client";
import {
  createBadRatioAlert,
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  signIdleMarker,
} from "../actors/stages/index.js";
import { createParseHandler } from "../actors/plan/index.js";
import type { InputMessage } from "../actors/host/index.js";
import { createStageState } from "../state/store.js";
import { createMetrics, type Metrics } from "../connectors/http/metrics.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { fakeOutput } from "./helpers/stage.js";

/**
 * Regression: reco_event_time_progress_ms was declared but never set, so the RecoEventTimeBehind
 * alert and the dashboard's event-time panel (deploy/) always read 0.
 */

const enc = new TextEncoder();
const T0 = Date.UTC(2026, 10, 21, 12, 0, 0);

const event = (seq: number, ts: number) => ({
  event_id: `00000000-0000-4000-8000-${seq.toString(16).padStart(12, "0")}`,
  event_type: "view",
  event_ts: new Date(ts).toISOString(),
  user_id: `u${seq % 3}`,
  item_id: `i${seq % 5}`,
});

const message = (seq: number, ts: number): InputMessage => ({
  seq,
  subject: "events.view",
  data: enc.encode(JSON.stringify(event(seq, ts))),
  headers: {},
});

const gauge = async (metrics: Metrics) =>
  (await metrics.registry.getSingleMetric("reco_event_time_progress_ms")!.get()).values[0]?.value;

describe("reco_event_time_progress_ms", () => {
  it("reads parse's event-time progress: the max event time seen, never moving back", async () => {
    const metrics = createMetrics(new Registry());
    const markerKey = enc.encode("the engine's key");
    const badRatio = createBadRatioAlert(metrics);
    const state = createStageState();
    const opts = {
      partitions: 2,
      preset: "ecommerce" as const,
      dedupeHorizonMs: 3_600_000,
      dedupeMaxIds: 1000,
      maxEventBytes: 65536,
      broadcastEveryMs: 1000,
      badRatio,
      markerKey,
    };
    const h = createParseHandler(state, fakeOutput().out, opts);
    h.handle(message(1, T0), 0);
    expect(await gauge(metrics)).toBe(T0);
    h.handle(message(2, T0 + 5_000), 0);
    h.handle(message(3, T0 + 1_000), 0); // out of order: progress stays
    expect(await gauge(metrics)).toBe(T0 + 5_000);
    // An idle marker read back moves it too.
    const marker = enc.encode(JSON.stringify({ progress: T0 + 9_000, after: 3 }));
    const headers = { [IDLE_SIGNATURE_HEADER]: signIdleMarker(markerKey, marker) };
    h.handle({ seq: 4, subject: IDLE_SUBJECT, data: marker, headers }, 0);
    expect(await gauge(metrics)).toBe(T0 + 9_000);

    // A restarted parse sets it from its snapshot at once, before any new event.
    const metrics2 = createMetrics(new Registry());
    createParseHandler(state, fakeOutput().out, {
      ...opts,
      badRatio: createBadRatioAlert(metrics2),
    });
    expect(await gauge(metrics2)).toBe(T0 + 9_000);
  });

  describe("in the app", () => {
    let nats: TestNats;
    let dataDir: string;
    let app: App | undefined;
    let nc: NatsConnection | undefined;

    beforeAll(async () => {
      nats = await setupNats();
      dataDir = await mkdtemp(join(tmpdir(), "reco-progress-gauge-"));
    });
    afterAll(async () => {
      await nc?.close();
      await app?.stop();
      await nats.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    });

    it("is scraped from /metrics as the max event time parse has accepted", async () => {
      app = await startApp(
        loadConfig({
          NATS_URL: nats.url,
          DATA_DIR: dataDir,
          GRPC_PORT: "0",
          GRPC_HOST: "127.0.0.1",
          METRICS_PORT: "0",
          PARTITIONS: "2",
          LOG_LEVEL: "silent",
        }),
        pino({ level: "silent" }),
      );
      nc = await connect({ servers: nats.url });
      const js = nc.jetstream();
      const times = [T0 + 3_000, T0 + 7_000, T0 + 2_000];
      for (const [k, ts] of times.entries())
        await js.publish("events.view", enc.encode(JSON.stringify(event(k + 1, ts))));
      const scrape = async () => {
        const text = await (await fetch(`http://127.0.0.1:${app!.metricsPort}/metrics`)).text();
        const line = text.split("\n").find((l) => l.startsWith("reco_event_time_progress_ms "));
        return Number(line?.split(" ")[1]);
      };
      const deadline = Date.now() + 10_000;
      while ((await scrape()) !== T0 + 7_000 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      expect(await scrape()).toBe(T0 + 7_000);
    });
  });
});
