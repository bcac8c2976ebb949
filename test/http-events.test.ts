import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { App } from "../bin/app.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startTestApp } from "./helpers/app.js";

/*
 * A browser front end posts events over HTTP (POST /v1/events): the same contract as on NATS,
 * published to JetStream with the event id as message id, answered 202 with a result per event,
 * keyed by API_KEYS; and the posted click changes the user's answer.
 */

const KEY = "test-key-0123456789abcdef";
const T0 = Date.UTC(2026, 10, 1, 12);

let nats: TestNats;
let app: App;
let dir: string;
let base: string;

const event = (user: string, item: string, type = "view", at = T0) => ({
  event_id: randomUUID(),
  event_type: type,
  event_ts: new Date(at).toISOString(),
  user_id: user,
  item_id: item,
  category_code: "electronics.phone",
  price: 10,
});

async function post(body: unknown, headers: Record<string, string> = { "x-api-key": KEY }) {
  const res = await fetch(`${base}/v1/events`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "reco-http-events-"));
  nats = await setupNats();
  app = await startTestApp(nats.url, dir, {
    PARTITIONS: "2",
    IDLE_TIMEOUT_MS: "1000",
    API_KEYS: `other-key-0123456789,${KEY}`,
  });
  base = `http://127.0.0.1:${app.webPort}`;
}, 60_000);

afterAll(async () => {
  await app?.stop();
  await nats?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("POST /v1/events", () => {
  it("refuses a write without a key of API_KEYS (401), naming the headers", async () => {
    const none = await post(event("u0", "i0"), {});
    expect(none.status).toBe(401);
    expect(JSON.stringify(none.body)).toMatch(/Authorization: Bearer <key> or X-API-Key: <key>/);
    expect(
      (await post(event("u0", "i0"), { authorization: "Bearer wrong-key-0123456789" })).status,
    ).toBe(401);
    expect((await post(event("u0", "i0"), { authorization: `Bearer ${KEY}` })).status).toBe(202);
  });

  it("answers 202 with each event accepted or rejected with its reason, and a retry counts once", async () => {
    const batch = [
      event("web-1", "p-1"),
      { ...event("web-1", "p-2"), event_id: "not-a-uuid" },
      event("web-1", "p-3", "cart"),
    ];
    const first = await post(batch);
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ accepted: 2, duplicates: 0, rejected: 1 });
    expect(first.body.results).toEqual([
      { index: 0, eventId: batch[0]!.event_id, status: "accepted" },
      { index: 1, eventId: "not-a-uuid", status: "rejected", reason: "invalid_field:event_id" },
      { index: 2, eventId: batch[2]!.event_id, status: "accepted" },
    ]);
    const again = await post(batch);
    expect(again.body).toMatchObject({ accepted: 0, duplicates: 2, rejected: 1 });
  });

  it("refuses what is not a batch of events with a 4xx naming why, publishing nothing", async () => {
    expect((await post("{not json")).status).toBe(400);
    expect((await post([])).status).toBe(400);
    const many = await post(Array.from({ length: 1001 }, () => event("u", "i")));
    expect(many.status).toBe(400);
    expect(JSON.stringify(many.body)).toMatch(/at most 1000/);
    const text = await fetch(`${base}/v1/events`, {
      method: "POST",
      headers: { "content-type": "text/plain", "x-api-key": KEY },
      body: "x",
    });
    expect(text.status).toBe(415);
    const elsewhere = await fetch(`${base}/v1/trending`, {
      method: "POST",
      headers: { "x-api-key": KEY },
    });
    expect(elsewhere.status).toBe(405);
  });

  it("lets a browser's preflight post with a key", async () => {
    const res = await fetch(`${base}/v1/events`, { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-methods")).toMatch(/POST/);
    expect(res.headers.get("access-control-allow-headers")).toMatch(/x-api-key/);
  });

  it("changes the user's answer: a posted click shows in their events and recommendations", async () => {
    // Something popular first, so the answer is not empty before the click.
    await post([
      event("other", "popular-1", "purchase", T0 - 60_000),
      event("other", "popular-2", "purchase", T0 - 60_000),
    ]);
    const user = "browser-user";
    const before = await fetch(`${base}/v1/users/${user}/recommendations?n=10`);
    const items = async () => {
      const r = await fetch(`${base}/v1/users/${user}/recommendations?n=10`);
      if (r.status !== 200) return [];
      return ((await r.json()) as { items: { itemId: string }[] }).items.map((i) => i.itemId);
    };
    expect(before.status === 200 ? await items() : []).not.toContain("clicked-item");
    expect((await post(event(user, "clicked-item", "click", T0))).body).toMatchObject({
      accepted: 1,
    });
    for (const end = Date.now() + 30_000; ; await new Promise((r) => setTimeout(r, 100))) {
      if ((await items()).includes("clicked-item")) break;
      if (Date.now() > end)
        throw new Error(`the click never showed: ${JSON.stringify(await items())}`);
    }
    const events = (await (await fetch(`${base}/v1/users/${user}/events?n=5`)).json()) as {
      events: { itemId: string }[];
    };
    expect(events.events.map((e) => e.itemId)).toEqual(["clicked-item"]);
  }, 60_000);
});
