import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NEVER } from "rxjs";
import type { RecoBackend } from "../actors/contract/index.js";
import { loadConfig } from "../bin/config.js";
import { startApiServer, type ApiServer } from "../connectors/http/api.js";

/*
 * A shop's front end on its own origin posts events to the API: WEB_CORS_ORIGINS lets that origin
 * through the browser's preflight, and no other.
 */

const KEY = "cors-key-0123456789abcdef";
const SHOP = "https://shop.example";
const backend = { isReady: () => true, trending: () => NEVER } as unknown as RecoBackend;
let server: ApiServer;
const published: string[] = [];

beforeAll(async () => {
  const cfg = loadConfig({ WEB_CORS_ORIGINS: `${SHOP}, http://localhost:3000`, API_KEYS: KEY });
  server = await startApiServer({
    port: 0,
    backend,
    corsOrigins: cfg.webCorsOrigins,
    apiKeys: cfg.apiKeys,
    publishEvent: async (subject) => {
      published.push(subject);
      return { duplicate: false };
    },
  });
});
afterAll(() => server.stop());

const preflight = (origin: string) =>
  fetch(`http://127.0.0.1:${server.port}/v1/events`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type, x-api-key",
    },
  });

describe("CORS for POST /v1/events", () => {
  it("answers a preflight from a listed origin with the CORS headers", async () => {
    const res = await preflight(SHOP);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(res.headers.get("access-control-allow-methods")).toMatch(/POST/);
    expect(res.headers.get("access-control-allow-headers")).toMatch(/x-api-key/);
    expect(res.headers.get("access-control-allow-headers")).toMatch(/content-type/);
    expect(res.headers.get("vary")).toMatch(/Origin/);
  });

  it("allows no other origin", async () => {
    const res = await preflight("https://evil.example");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("lets the listed origin post, with its key, and read the answer", async () => {
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/events`, {
      method: "POST",
      headers: { origin: SHOP, "content-type": "application/json", "x-api-key": KEY },
      body: JSON.stringify({
        event_id: "0b0c5f5e-8f0e-4f5b-9a36-5d2f3c1f2a10",
        event_type: "view",
        event_ts: "2026-11-01T12:00:00Z",
        user_id: "u1",
        item_id: "i1",
      }),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get("access-control-allow-origin")).toBe(SHOP);
    expect(published).toEqual(["events.view"]);
  });
});
