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
import { Source, TrendingWindow, type TrendingUpdate } from "../proto/gen/reco/v1/reco_pb.js";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { poller } from "./helpers/harness.js";

const H = 3_600_000;
const T0 = Date.parse("2026-11-20T08:00:00Z");

const eventually = poller({ ms: 20_000, everyMs: 100 });

const simplify = (items: { itemId: string; score: number; source: Source }[]) =>
  items.map((i) => ({
    itemId: i.itemId,
    score: Number(i.score.toFixed(6)),
    source: i.source === Source.PERSONALIZED ? "PERSONALIZED" : "POPULAR_FALLBACK",
  }));

describe("end to end: events in over JetStream, answers out over gRPC", () => {
  let nats: TestNats;
  let dataDir: string;
  let app: App;
  let nc: NatsConnection;
  let client: RecoClient;
  const log: RefEvent[] = generateLog({
    seed: 42,
    events: 400,
    users: 25,
    items: 30,
    categories: ["electronics", "books", "garden", "toys", "sports"],
    start: T0,
    spanMs: 3 * H,
    lateShare: 0.03,
    lateByMs: 40 * 60_000,
  });
  // Duplicates (same event_id, published again) and bad events ride along.
  const r = rng(7);
  const dupes = log.filter(() => r() < 0.03);
  const bad = [
    "{not json",
    JSON.stringify({ event_id: seededUuid(r), event_type: "view", user_id: "u1", item_id: "p1" }),
    JSON.stringify({ ...log[0], event_id: seededUuid(r), user_id: "" }),
  ];

  beforeAll(async () => {
    nats = await setupNats();
    dataDir = await mkdtemp(join(tmpdir(), "reco-e2e-"));
    const cfg = loadConfig({
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      GRPC_PORT: "0",
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      PARTITIONS: "4",
      TRENDING_TRIGGER: "200",
      SNAPSHOT_INTERVAL: "500",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "silent",
    });
    app = await startApp(cfg, pino({ level: "silent" }));
    nc = await connect({ servers: nats.url });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  });

  afterAll(async () => {
    client?.close();
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("answers UNAVAILABLE-free before data: an empty list with a clear status message", async () => {
    const res = await client.getRecommendations("u1", 5);
    expect(res.items).toHaveLength(0);
    expect(res.statusMessage).toMatch(/no purchases seen yet/);
  });

  it("serves exactly the reference's recommendations, personalised and fallback", async () => {
    const js = nc.jetstream();
    for (const e of log) await js.publish(`events.${e.event_type}`, JSON.stringify(e));
    for (const e of dupes) await js.publish(`events.${e.event_type}`, JSON.stringify(e));
    for (const b of bad) await js.publish("events.view", b);
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
      expect(
        res.topCategories.map((c) => [c.category, Number(c.interest)]),
        `top categories of ${u}`,
      ).toEqual(ref.topCategories(u));
    }
    // Both kinds of answer were exercised.
    const sources = new Set(users.flatMap((u) => ref.recommend(u, 10).map((i) => i.source)));
    expect(sources).toEqual(new Set(["PERSONALIZED", "POPULAR_FALLBACK"]));

    const cold = await client.getRecommendations("never-seen-user", 3);
    expect(simplify(cold.items)).toEqual(ref.recommend("never-seen-user", 3));
    expect(cold.items.every((i) => i.source === Source.POPULAR_FALLBACK)).toBe(true);
    expect(cold.statusMessage).toMatch(/unknown user/);
  });

  it("counts bad events into the dead-letter stream with their reason", async () => {
    const jsm = await nc.jetstreamManager();
    const info = await eventually(
      () => jsm.streams.info("RECO_DLQ"),
      (i) => i.state.messages === bad.length,
    );
    expect(info.state.messages).toBe(bad.length);
    const m = await jsm.streams.getMessage("RECO_DLQ", { seq: info.state.first_seq });
    expect(m.header.get("Reco-Reason")).toBe("bad_json");
    expect(new TextDecoder().decode(m.data)).toBe(bad[0]);
  });

  it("streams trending updates and a final one when the watermark closes the window", async () => {
    const ref0 = reference(log);
    const newestHour = ref0.now - (ref0.now % H);
    const stream = client.streamTrending(TrendingWindow.ONE_HOUR, 5);
    // A view 3 hours later moves the watermark past the end of the newest hour of the log.
    const closer: RefEvent = {
      event_id: seededUuid(r),
      event_type: "view",
      event_ts: new Date(ref0.now + 3 * H).toISOString(),
      user_id: "closer",
      item_id: "p-closer",
      category_code: "misc",
    };
    const updates: TrendingUpdate[] = [];
    let final: TrendingUpdate | undefined;
    const got = (async () => {
      for await (const u of stream) {
        updates.push(u);
        const start = Number(u.windowStart?.seconds ?? 0n) * 1000;
        if (u.final && start === newestHour) {
          final = u;
          stream.cancel();
        }
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    await nc.jetstream().publish("events.view", JSON.stringify(closer));
    await Promise.race([got, new Promise((r) => setTimeout(r, 20_000))]);
    stream.cancel();
    expect(updates.length).toBeGreaterThan(0);
    expect(final, "a final update for the newest hour").toBeDefined();
    const expected = reference([...log, closer])
      .trendingHour(newestHour)
      .slice(0, 5)
      .map((i) => [i.itemId, i.score, i.views, i.clicks]);
    expect(final!.items.map((i) => [i.itemId, i.score, Number(i.views), Number(i.clicks)])).toEqual(
      expected,
    );
    expect(final!.items.map((i) => i.rank)).toEqual(expected.map((_, k) => k + 1));
  });

  it("serves a client that has only the .proto file, for both RPCs", async () => {
    const def = loadSync(join(import.meta.dirname, "..", "proto", "reco", "v1", "reco.proto"), {
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
    });
    type Raw = grpc.Client & {
      GetRecommendations(
        req: object,
        cb: (err: grpc.ServiceError | null, res: Record<string, unknown>) => void,
      ): void;
      StreamTrending(req: object): grpc.ClientReadableStream<Record<string, unknown>>;
    };
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      reco: { v1: { RecommendationService: new (a: string, c: grpc.ChannelCredentials) => Raw } };
    };
    const raw = new pkg.reco.v1.RecommendationService(
      `127.0.0.1:${app.grpcPort}`,
      grpc.credentials.createInsecure(),
    );
    const ref = reference(log);
    const user = [...new Set(log.map((e) => String(e.user_id)))]
      .sort()
      .find((u) => ref.recommend(u, 3).some((i) => i.source === "PERSONALIZED"))!;
    const res = await new Promise<Record<string, unknown>>((ok, fail) =>
      raw.GetRecommendations({ user_id: user, n: 3 }, (err, r) => (err ? fail(err) : ok(r))),
    );
    const items = res.items as { item_id: string; source: string }[];
    expect(items.map((i) => [i.item_id, i.source])).toEqual(
      ref.recommend(user, 3).map((i) => [i.itemId, i.source]),
    );
    const bad = await new Promise<grpc.ServiceError | null>((ok) =>
      raw.GetRecommendations({ user_id: user, n: 101 }, (err) => ok(err)),
    );
    expect(bad?.code).toBe(grpc.status.INVALID_ARGUMENT);

    const stream = raw.StreamTrending({ window: "ONE_DAY", k: 3 });
    const first = await new Promise<Record<string, unknown>>((ok, fail) => {
      stream.once("data", ok);
      stream.once("error", fail);
    });
    stream.cancel();
    expect(first.window).toBe("ONE_DAY");
    expect((first.items as unknown[]).length).toBeGreaterThan(0);
    raw.close();
  });
});
