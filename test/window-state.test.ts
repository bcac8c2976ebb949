import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { createStageState } from "../state/store.js";
import type { Envelope, InputMessage, StageOutput } from "../actors/host/index.js";
import type { ParsedRecord, EventType } from "../actors/contract/index.js";
import { createWindowHandler } from "../actors/plan/index.js";
import { DAY, HOUR, MINUTE } from "../actors/contract/index.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog } from "./helpers/events.js";
import { reference } from "./helpers/reference.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createJetStreamPublisher } from "../connectors/nats/publisher.js";

/*
 * Window state is dropped once final, so state is bounded by open windows, not
 * by events: "show it with a number". A log of several days of event time through the window
 * handler, checking after every batch that the state holds no more keys than the open windows
 * have; then the same through the app, from reco_stage_state_keys{stage="window"}.
 */

const WINDOW = 5 * MINUTE;
const OOO = 10 * MINUTE;
const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const enc = new TextEncoder();

const log = generateLog({
  seed: 606,
  events: 20_000,
  users: 400,
  items: 200,
  categories: ["electronics", "books", "garden", "toys"],
  start: T0,
  spanMs: 4 * DAY,
  lateShare: 0.01,
  lateByMs: 3 * HOUR,
});

/** Distinct (window, type, user, item) keys over `recs` whose window is still open at `wm`. */
function openKeys(recs: ParsedRecord[], wm: number): number {
  const keys = new Set<string>();
  for (const r of recs) {
    const w = r.ts - (r.ts % WINDOW);
    if (w + WINDOW > wm) keys.add(JSON.stringify([w, r.t, r.u, r.i]));
  }
  return keys.size;
}

describe("window state is bounded by open windows", () => {
  it("holds after every batch of a 4-day log at most the keys of the windows still open", () => {
    const state = createStageState();
    const noop = () => undefined;
    const out: StageOutput = {
      emit: noop,
      touch: noop,
      setProgress: noop,
      raw: noop,
      kvPut: noop,
      count: noop,
    };
    const h = createWindowHandler(state, out, {
      partition: 0,
      sizeMs: WINDOW,
      outOfOrdernessMs: OOO,
    });
    // The records the watermark stage lets through (late ones go to reco.late), each with its
    // `wb`, in batches of 50 as parse would cut them.
    const ref = reference(log);
    const onTime: ParsedRecord[] = ref
      .timeline()
      .filter((e) => !(e.wb >= 0 && e.ts < e.wb - OOO))
      .map((e, k) => ({ ...e, t: e.t as EventType, c: "", b: "", pr: -1, r: -1, s: k + 1 }));
    let maxKeys = 0;
    let maxOpen = 0;
    const seen: ParsedRecord[] = [];
    let progress = -1;
    for (let k = 0; k < onTime.length; k += 50) {
      const batch = onTime.slice(k, k + 50);
      for (const r of batch) progress = Math.max(progress, r.ts);
      const env: Envelope<ParsedRecord> = { upTo: k + 50, wm: progress, recs: batch };
      const msg: InputMessage = {
        seq: k / 50 + 1,
        subject: "reco.watermark.0",
        data: enc.encode(JSON.stringify(env)),
        headers: {},
      };
      h.handle(msg, 0);
      seen.push(...batch);
      const open = openKeys(seen, progress - OOO);
      const held = state.keyCount();
      expect(held).toBeLessThanOrEqual(open);
      expect([...h.openWindows().values()].reduce((a, b) => a + b, 0)).toBe(held);
      maxKeys = Math.max(maxKeys, held);
      maxOpen = Math.max(maxOpen, open);
    }
    const windows = new Set(onTime.map((r) => r.ts - (r.ts % WINDOW))).size;
    console.log(
      `window handler: ${onTime.length} records in ${windows} windows over 4 days; ` +
        `state at most ${maxKeys} keys (open windows at most ${maxOpen} keys), ` +
        `${state.keyCount()} at the end, ${h.openWindows().size} windows open`,
    );
    // Bounded by the ~3 open windows, not by the 20k events.
    expect(h.openWindows().size).toBeLessThanOrEqual(OOO / WINDOW + 1);
    expect(maxKeys).toBeLessThan(onTime.length / 50);
  });
});

describe("reco_stage_state_keys{stage=window} in the app after a 4-day log", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-state-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: dir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "4",
        IDLE_TIMEOUT_MS: "0",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const stageSum = async (name: string, stage: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
    let sum = 0;
    for (const line of text.split("\n"))
      if (line.startsWith(`${name}{stage="${stage}"`))
        sum += Number(line.slice(line.lastIndexOf(" ") + 1));
    return sum;
  };
  const windowKeys = () => stageSum("reco_stage_state_keys", "window");

  it("holds the keys of the windows open at the end, not one per event", async () => {
    const pub = createJetStreamPublisher(nc, { window: 256, timeoutMs: 30_000 });
    await pub.publishMany(
      log.map((e) => ({ subject: `events.${e.event_type}`, data: enc.encode(JSON.stringify(e)) })),
    );
    await pub.close();
    // What the windows open at the end hold: on-time events whose window ends after the final
    // watermark (progress − 10 min), one key per (window, type, user, item).
    const ref = reference(log);
    const wm = ref.now - OOO;
    const expected = new Set(
      ref
        .timeline()
        .filter((e) => !(e.wb >= 0 && e.ts < e.wb - OOO))
        .filter((e) => e.ts - (e.ts % WINDOW) + WINDOW > wm)
        .map((e) => JSON.stringify([e.ts - (e.ts % WINDOW), e.t, e.u, e.i])),
    ).size;
    // Until every window instance has processed the whole log.
    let keys = await windowKeys();
    for (const until = Date.now() + 30_000; keys !== expected && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 200));
      keys = await windowKeys();
    }
    console.log(
      `reco_stage_state_keys{stage="window"} = ${keys} after ${log.length} events ` +
        `(${ref.accepted} accepted) over 4 days; keys in the windows open at the end: ${expected}`,
    );
    expect(keys).toBeLessThanOrEqual(expected);
    expect(keys).toBe(expected);
    expect(keys).toBeLessThan(log.length / 100);
  });

  // The bytes a stage's
  // state holds for cold keys, the stored records a snapshot wrote, off the V8 heap.
  it("reports the bytes each stage holds for its cold keys", async () => {
    let cold = 0;
    for (const until = Date.now() + 30_000; cold === 0 && Date.now() < until;) {
      await new Promise((r) => setTimeout(r, 200));
      cold = await stageSum("reco_stage_state_cold_bytes", "history");
    }
    const keys = await stageSum("reco_stage_state_keys", "history");
    console.log(`history: ${keys} keys, ${cold} B of cold state`);
    expect(keys).toBeGreaterThan(100);
    // At least each user's list as a record (key, tag, length, items) and its index slot; at
    // most that plus the superseded records a buffer may keep before it is compacted (~256 KiB
    // per instance: cold-index.ts wasteful) over 4 partitions.
    expect(cold / keys).toBeGreaterThan(20);
    expect(cold).toBeLessThan(keys * 1_000 + 4 * 2 ** 20);
  });
});
