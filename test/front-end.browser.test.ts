import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import type { App } from "../bin/app.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startTestApp } from "./helpers/app.js";
import { needTool } from "./helpers/tools.js";

/*
 * A shop's own web page, served from another origin, posts a click to the engine from a real
 * browser (POST /v1/events with the shop's key, allowed by WEB_CORS_ORIGINS) and sees it change
 * the user's recommendations; the same page from an origin not listed is refused by the browser.
 */

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const KEY = "shop-key-0123456789abcdef";
const T0 = Date.UTC(2026, 10, 1, 12);

/** The shop's page: a button that posts a click, and the user's recommendations below it. */
const page = (engineUrl: string) => `<!doctype html>
<html><body>
<button id="click" data-item="shop-phone-7">phone 7</button>
<ol id="recs"></ol>
<p id="error"></p>
<script>
const engine = ${JSON.stringify(engineUrl)};
const user = "shop-user-1";
const show = async () => {
  const r = await fetch(engine + "/v1/users/" + user + "/recommendations?n=10");
  if (!r.ok) return;
  const body = await r.json();
  document.getElementById("recs").replaceChildren(
    ...body.items.map((i) => Object.assign(document.createElement("li"), { textContent: i.itemId })),
  );
};
document.getElementById("click").onclick = async (e) => {
  try {
    const res = await fetch(engine + "/v1/events", {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": ${JSON.stringify(KEY)} },
      body: JSON.stringify({
        event_id: crypto.randomUUID(),
        event_type: "click",
        event_ts: new Date(${T0}).toISOString(),
        user_id: user,
        item_id: e.target.dataset.item,
        category_code: "electronics.smartphone",
        price: 199,
      }),
    });
    document.body.dataset.posted = String(res.status);
  } catch (err) {
    document.getElementById("error").textContent = String(err);
    return;
  }
  setInterval(show, 200);
};
</script>
</body></html>`;

let nats: TestNats;
let app: App;
let dir: string;
let browser: Browser | undefined;
const shops: Server[] = [];
/** The engine's JSON API, once it runs. */
let engine = "";

/** Serves the shop's page on a port of its own: an origin of its own. */
async function shop(): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(page(engine));
  });
  shops.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const allowed = { origin: "" };
const other = { origin: "" };

beforeAll(async () => {
  needTool(CHROMIUM, "chromium");
  dir = await mkdtemp(join(tmpdir(), "reco-front-end-"));
  nats = await setupNats();
  // The shop's origin must be known before the engine starts: its port is taken first.
  allowed.origin = await shop();
  other.origin = await shop();
  app = await startTestApp(nats.url, dir, {
    PARTITIONS: "2",
    IDLE_TIMEOUT_MS: "1000",
    API_KEYS: KEY,
    WEB_CORS_ORIGINS: allowed.origin,
  });
  engine = `http://127.0.0.1:${app.webPort}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  for (const s of shops) await new Promise((r) => s.close(r));
  await app?.stop();
  await nats?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a shop's page in a browser", () => {
  it("posts a click to the engine from its own origin and sees it in the user's recommendations", async () => {
    const tab = await browser!.newPage();
    await tab.goto(allowed.origin);
    await tab.click("#click");
    await expect.poll(() => tab.locator("body").getAttribute("data-posted")).toBe("202");
    await tab.locator("#recs li", { hasText: "shop-phone-7" }).waitFor({ timeout: 30_000 });
    expect(await tab.locator("#error").textContent()).toBe("");
    await tab.close();
  }, 60_000);

  it("is refused by the browser from an origin WEB_CORS_ORIGINS does not list", async () => {
    const tab = await browser!.newPage();
    await tab.goto(other.origin);
    await tab.click("#click");
    await expect
      .poll(() => tab.locator("#error").textContent(), { timeout: 10_000 })
      .toMatch(/TypeError|Failed to fetch/);
    expect(await tab.locator("body").getAttribute("data-posted")).toBeNull();
    await tab.close();
  }, 60_000);
});
