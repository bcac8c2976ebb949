import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import type { App } from "../bin/app.js";
import { replayFile } from "../bin/replay/run.js";
import { splitCsvLine } from "../bin/replay/formats.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startTestApp } from "./helpers/app.js";

/*
 * The item catalogue through the real app (MovieLens latest-small, the movies preset): answers
 * carry the films' titles, an item hidden with PUT /v1/items/{id} leaves every answer within a
 * second and comes back when unhidden, writes need a key and name a bad field, and the same
 * upserts over NATS (items.upsert) work, a bad one dead-lettered with its reason.
 */

const data = resolve(import.meta.dirname, "..", "..", "shared", "data", "ml-latest-small");
const KEY = "catalogue-key-0123456789";
const USER = "1";

let nats: TestNats;
let app: App;
let dir: string;
let base: string;
let client: RecoClient;
let nc: NatsConnection;
const titles = new Map<string, string>();
const rated = new Set<string>();

const getJson = async (path: string) => {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const put = async (item: string, body: unknown, headers: Record<string, string> = {}) => {
  const res = await fetch(`${base}/v1/items/${item}`, {
    method: "PUT",
    headers: { "content-type": "application/json", "x-api-key": KEY, ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const recommended = async (n = 10) =>
  (await client.getRecommendations(USER, n)).items.map((i) => i.itemId);
const similar = async (item: string, n = 10) =>
  (await client.getSimilarItems(item, n)).items.map((i) => i.itemId);

beforeAll(async () => {
  const ratings = join(data, "ratings.csv");
  if (!existsSync(ratings)) throw new Error(`MovieLens logs missing: expected ${ratings}`);
  const lines = readFileSync(join(data, "movies.csv"), "utf8").split(/\r?\n/).slice(1);
  for (const line of lines) {
    const s = splitCsvLine(line);
    if (s.ok && s.fields.length === 3) titles.set(s.fields[0]!, s.fields[1]!);
  }
  for (const line of readFileSync(ratings, "utf8").split("\n").slice(1)) {
    const [u, m] = line.split(",");
    if (u === USER && m) rated.add(m);
  }
  dir = await mkdtemp(join(tmpdir(), "reco-catalogue-"));
  nats = await setupNats();
  app = await startTestApp(nats.url, dir, {
    PARTITIONS: "2",
    PRESET: "movies",
    MOVIES_CATALOG: join(data, "movies.csv"),
    IDLE_TIMEOUT_MS: "1500",
    API_KEYS: KEY,
  });
  base = `http://127.0.0.1:${app.webPort}`;
  client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  nc = await connect({ servers: nats.url });
  const s = await replayFile({
    file: ratings,
    natsUrl: nats.url,
    moviesFile: join(data, "movies.csv"),
    limit: 20_000,
    awaitEngineMs: 200_000,
    metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
  });
  expect(s.engine?.caughtUp, s.engine?.note).toBe(true);
}, 300_000);

afterAll(async () => {
  client?.close();
  await nc?.close();
  await app?.stop();
  await nats?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("titles beside ids", () => {
  it("gives a user ten films with their titles over gRPC, none already rated", async () => {
    const res = await client.getRecommendations(USER, 10);
    expect(res.items).toHaveLength(10);
    for (const i of res.items) {
      expect(rated.has(i.itemId), `film ${i.itemId} was rated`).toBe(false);
      expect(i.title, `film ${i.itemId}`).toBe(titles.get(i.itemId));
      expect(i.title).not.toBe("");
    }
  });

  it("and the same titles over JSON", async () => {
    const { status, body } = await getJson(`/v1/users/${USER}/recommendations?n=10`);
    expect(status).toBe(200);
    const items = body.items as { itemId: string; title?: string }[];
    expect(items).toHaveLength(10);
    for (const i of items) {
      expect(rated.has(i.itemId)).toBe(false);
      expect(i.title).toBe(titles.get(i.itemId));
    }
  });

  it("shows an item's catalogue fields: title and genres from movies.csv", async () => {
    const { status, body } = await getJson("/v1/items/1");
    expect(status).toBe(200);
    const c = body.catalogue as Record<string, unknown>;
    expect(c.title).toBe("Toy Story (1995)");
    expect(c.categories).toEqual(["Adventure", "Animation", "Children", "Comedy", "Fantasy"]);
    expect(c.hidden).toBe(false);
  });

  it("titles similar items", async () => {
    const res = await client.getSimilarItems("1", 5);
    expect(res.items.length).toBeGreaterThan(0);
    for (const i of res.items) expect(i.title).toBe(titles.get(i.itemId));
  });
});

describe("writes", () => {
  it("refuse a PUT without a key (401)", async () => {
    const res = await fetch(`${base}/v1/items/1`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hidden: true }),
    });
    expect(res.status).toBe(401);
    expect((await getJson("/v1/items/1")).body.catalogue).toMatchObject({ hidden: false });
  });

  it.each([
    [{ price: -1 }, "price"],
    [{ price: "12" }, "price"],
    [{ hidden: "yes" }, "hidden"],
    [{ categories: "comedy" }, "categories"],
    [{ labels: [""] }, "labels"],
    [{ hiden: true }, "hiden"],
  ])("answer a bad field with 400 naming it (%j)", async (body, field) => {
    const res = await put("1", body);
    expect(res.status).toBe(400);
    const err = res.body.error as { field: string; code: string };
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.field).toBe(field);
  });

  it("store an upsert and answer the item as stored; fields left out keep their value", async () => {
    const a = await put("2", { title: "Jumanji (director's cut)", brand: "TriStar", price: 9.5 });
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({
      title: "Jumanji (director's cut)",
      brand: "TriStar",
      price: 9.5,
    });
    const b = await put("2", { labels: ["family"] });
    expect(b.body).toMatchObject({
      title: "Jumanji (director's cut)",
      brand: "TriStar",
      labels: ["family"],
      categories: ["Adventure", "Children", "Fantasy"],
    });
  });
});

describe("hidden items", () => {
  it("leave recommendations and similar items within 1 s, the answers still full, and come back", async () => {
    const before = await recommended();
    const hide = before[0]!;
    const simBefore = await similar("1");
    const hideSimilar = simBefore[0]!;
    const t0 = Date.now();
    expect((await put(hide, { hidden: true })).body).toMatchObject({ hidden: true });
    expect((await put(hideSimilar, { hidden: true })).body).toMatchObject({ hidden: true });
    let recs = await recommended();
    let sims = await similar("1");
    while ((recs.includes(hide) || sims.includes(hideSimilar)) && Date.now() - t0 < 1_000) {
      await new Promise((r) => setTimeout(r, 50));
      recs = await recommended();
      sims = await similar("1");
    }
    expect(recs).not.toContain(hide);
    expect(recs).toHaveLength(10);
    expect(sims).not.toContain(hideSimilar);
    expect(sims).toHaveLength(simBefore.length);
    const json = await getJson(`/v1/users/${USER}/recommendations?n=10`);
    expect((json.body.items as { itemId: string }[]).map((i) => i.itemId)).not.toContain(hide);

    await put(hide, { hidden: false });
    await put(hideSimilar, { hidden: false });
    expect(await recommended()).toEqual(before);
    expect(await similar("1")).toEqual(simBefore);
  });
});

describe("items.upsert over NATS", () => {
  it("applies an upsert and dead-letters a bad one with its reason", async () => {
    const js = nc.jetstream();
    await js.publish("items.upsert", JSON.stringify({ item_id: 3, labels: ["classic"] }));
    await js.publish("items.upsert", JSON.stringify({ item_id: "4", price: "cheap" }));
    await js.publish("items.upsert", "not json");
    const t = Date.now();
    let c: Record<string, unknown> | undefined;
    while (Date.now() - t < 5_000) {
      c = (await getJson("/v1/items/3")).body.catalogue as Record<string, unknown>;
      if ((c.labels as string[]).length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(c).toMatchObject({ title: "Grumpier Old Men (1995)", labels: ["classic"] });
    const jsm = await nc.jetstreamManager();
    const reasons: string[] = [];
    const until = Date.now() + 5_000;
    while (reasons.length < 2 && Date.now() < until) {
      reasons.length = 0;
      const info = await jsm.streams.info("RECO_DLQ", { subjects_filter: "reco.dlq.items" });
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage("RECO_DLQ", { seq }).catch(() => undefined);
        if (m?.subject === "reco.dlq.items") reasons.push(m.header.get("Reco-Reason"));
      }
      if (reasons.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    expect(reasons.sort()).toEqual(["bad_json", "invalid_field:price"]);
    expect((await getJson("/v1/items/4")).body.catalogue).toMatchObject({ labels: [] });
  });
});

describe("hidden trending items", () => {
  it("leave the trending lists and open streams (gRPC, SSE) within 1 s, and come back", async () => {
    // Ratings stamped now make the newest 24 h window hold a known list (the replayed ones are
    // years old). The movies preset's trending counts ratings by value: film 10 scores 9, film
    // 20 scores 4.
    const now = Date.now();
    const ratings = [
      ["10", 3],
      ["10", 3],
      ["10", 3],
      ["20", 2],
      ["20", 2],
    ].map(([item, rating], k) => ({
      event_id: randomUUID(),
      event_type: "rating",
      event_ts: new Date(now + k).toISOString(),
      user_id: `rater${k}`,
      item_id: item,
      rating,
    }));
    const posted = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": KEY },
      body: JSON.stringify(ratings),
    });
    expect((await posted.json()) as unknown).toMatchObject({ accepted: 5 });
    const ids = async () => (await client.getTrending("24h", 10)).items.map((i) => i.itemId);
    // Until the ratings are counted, the newest window is the replay's last one.
    const newestStart = async () =>
      Number((await client.getTrending("24h", 10)).windowStart?.seconds ?? 0n) * 1000;
    for (let t = Date.now(); (await newestStart()) <= now - 86_400_000 && Date.now() - t < 10_000;)
      await new Promise((r) => setTimeout(r, 100));
    for (let t = Date.now(); (await ids()).length < 2 && Date.now() - t < 10_000;)
      await new Promise((r) => setTimeout(r, 100));
    expect(await ids()).toEqual(["10", "20"]);
    expect((await client.getTrending("24h", 10)).items[0]!.title).toBe(titles.get("10"));

    // The console's stream too: server-sent events, the latest list in each.
    const sse = await fetch(`${base}/v1/trending/stream?window=24h&k=10`);
    const reader = sse.body!.getReader();
    let sseLast: string[] = [];
    let buffered = "";
    void (async () => {
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return;
        buffered += new TextDecoder().decode(value);
        let end: number;
        while ((end = buffered.indexOf("\n\n")) >= 0) {
          const data = /^data: (.*)$/m.exec(buffered.slice(0, end))?.[1];
          buffered = buffered.slice(end + 2);
          if (data)
            sseLast = (JSON.parse(data) as { items: { itemId: string }[] }).items.map(
              (i) => i.itemId,
            );
        }
      }
    })();
    const stream = client.streamTrending("24h", 10);
    let last: string[] = [];
    void (async () => {
      for await (const u of stream) last = u.items.map((i) => i.itemId);
    })();
    const until = async (ok: () => boolean, ms: number) => {
      const t = Date.now();
      while (!ok() && Date.now() - t < ms) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    expect(await until(() => last.length === 2 && sseLast.length === 2, 5_000)).toBe(true);
    await put("10", { hidden: true });
    expect(await until(() => !last.includes("10") && !sseLast.includes("10"), 1_000)).toBe(true);
    expect(last).toEqual(["20"]);
    expect(sseLast).toEqual(["20"]);
    const json = await getJson("/v1/trending?window=24h&k=10");
    expect((json.body.items as { itemId: string }[]).map((i) => i.itemId)).toEqual(["20"]);
    await put("10", { hidden: false });
    expect(await until(() => last[0] === "10" && sseLast[0] === "10", 1_000)).toBe(true);
    stream.cancel();
    await reader.cancel();
  });
});
