import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { chromium, type Browser, type Page } from "playwright-core";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateLog, rng, seededUuid } from "./helpers/events.js";
import { loadConfig, type AppConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import { poller } from "./helpers/harness.js";
import { needTool } from "./helpers/tools.js";

/**
 * The web console in a real headless Chromium (Debian's), against the real app: a nats-server,
 * LevelDB on disk, the stages, gRPC and the JSON API on loopback. Screenshots of every page go to
 * `.screenshots/` (ignored by git).
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = join(process.cwd(), ".screenshots");
const H = 3_600_000;
const T0 = Date.parse("2019-10-01T08:00:00Z");

const eventually = poller({ ms: 20_000, everyMs: 100 });

describe("web console in headless Chromium", () => {
  let nats: TestNats;
  let dataDir: string;
  let cfg: AppConfig;
  let app: App;
  let nc: NatsConnection;
  let client: RecoClient;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];
  const log = generateLog({
    seed: 14,
    events: 600,
    users: 30,
    items: 40,
    categories: ["electronics", "books", "garden", "toys"],
    start: T0,
    spanMs: 2 * H,
    lateShare: 0,
    lateByMs: 0,
  });

  beforeAll(async () => {
    needTool(CHROMIUM, "chromium");
    nats = await setupNats();
    dataDir = await mkdtemp(join(tmpdir(), "reco-console-"));
    cfg = loadConfig({
      NATS_URL: nats.url,
      DATA_DIR: dataDir,
      GRPC_PORT: "0",
      METRICS_PORT: "0",
      WEB_PORT: "0",
      PARTITIONS: "2",
      PARSE_PROCESS: "0",
      TRENDING_TRIGGER: "200",
      SNAPSHOT_INTERVAL: "500",
      IDLE_TIMEOUT_MS: "0",
      // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
      RANKER: "design",
      LOG_LEVEL: "silent",
    });
    app = await startApp(cfg, pino({ level: "silent" }));
    nc = await connect({ servers: nats.url });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    // Offline: any request that leaves the app (a CDN, a font service) fails the test.
    await page.route(
      (url) => url.host !== new URL(app.webUrl).host,
      (route) => {
        pageErrors.push(`request outside the app: ${route.request().url()}`);
        return route.abort();
      },
    );
  });

  afterAll(async () => {
    await browser?.close();
    client?.close();
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it("shows a user's recommendations: the same items and sources as gRPC, with reasons", async () => {
    const js = nc.jetstream();
    for (const e of log) await js.publish(`events.${e.event_type}`, JSON.stringify(e));
    // A user with personalised items and fallback ones, once the pipeline has caught up.
    const users = [...new Set(log.map((e) => String(e.user_id)))].sort();
    let user = "";
    const answer = await eventually(
      async () => {
        for (const u of users) {
          const r = await client.getRecommendations(u, 20);
          const sources = new Set(r.items.map((i) => i.source));
          if (sources.has(Source.PERSONALIZED) && sources.has(Source.POPULAR_FALLBACK)) {
            user = u;
            return r;
          }
        }
        return undefined;
      },
      (r) => r !== undefined,
    );
    expect(answer, "a user with both kinds of items").toBeDefined();

    await page.goto(`${app.webUrl}#/users/${encodeURIComponent(user)}`);
    const rows = page.locator("#recommendations tbody tr");
    await rows.first().waitFor();
    const shown = await rows.evaluateAll((trs) =>
      trs.map((tr) => ({
        itemId: tr.getAttribute("data-item-id"),
        source: tr.querySelector(".badge")?.textContent,
        reason: tr.querySelector(".explain")?.textContent ?? "",
      })),
    );
    const grpc = (await client.getRecommendations(user, 20)).items;
    expect(shown.map((s) => s.itemId)).toEqual(grpc.map((i) => i.itemId));
    expect(shown.map((s) => s.source)).toEqual(
      grpc.map((i) => (i.source === Source.PERSONALIZED ? "personalized" : "popular fallback")),
    );
    for (const s of shown)
      expect(s.reason).toMatch(
        /^popular in your top category \w+: bought|^one of the most bought products overall/,
      );
    await expect.poll(() => page.locator("text=Top categories").count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(SHOTS, "user.png"), fullPage: true });

    // A user the pipeline never saw: a fallback answer with its reason, not an error.
    await page.goto(`${app.webUrl}#/users/nobody-at-all`);
    await page.locator("#status-message").waitFor();
    expect(await page.locator("#status-message").textContent()).toMatch(/unknown user/);
  });

  it("shows an item's popularity and similar items, marked with the source that answered", async () => {
    const popular = (await client.getRecommendations("nobody", 1)).items[0]!.itemId;
    await page.goto(`${app.webUrl}#/items/${popular}`);
    await page.locator("#similar tbody tr").first().waitFor();
    expect(await page.locator("text=same category popular").count()).toBeGreaterThan(0);
    expect(await page.locator("text=purchases, 7 days").count()).toBe(1);
    // Every event of the log carried a price (5 + the item's number % 20): no dash anywhere.
    const priceOf = (item: string) => `$${(5 + (Number(item.slice(1)) % 20)).toFixed(2)}`;
    expect(await page.locator("dl.facts .price").first().textContent()).toBe(priceOf(popular));
    const prices = await page
      .locator("#similar tbody tr")
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.getAttribute("data-item-id") ?? "", tr.lastElementChild?.textContent]),
      );
    expect(prices.length).toBeGreaterThan(0);
    for (const [item, shown] of prices) expect(shown).toBe(priceOf(item!));
    expect(await page.locator(".no-price").count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, "item.png"), fullPage: true });
  });

  it("shows an item's catalogue title and labels beside its id, on the item and user pages", async () => {
    const popular = (await client.getRecommendations("nobody", 1)).items[0]!.itemId;
    await nc
      .jetstream()
      .publish(
        "items.upsert",
        JSON.stringify({ item_id: popular, title: "Walnut desk lamp", labels: ["promo"] }),
      );
    for (let t = Date.now(); Date.now() - t < 5_000; await new Promise((r) => setTimeout(r, 50)))
      if ((await client.getRecommendations("nobody", 1)).items[0]!.title !== "") break;
    // The user page first: the item page is the one the test before left open.
    await page.goto(`${app.webUrl}#/users/nobody`);
    const row = page.locator(`#recommendations tr[data-item-id="${popular}"]`);
    await row.waitFor();
    expect(await row.locator(".item-title").textContent()).toBe("Walnut desk lamp");
    expect(await row.locator(".label").textContent()).toBe("promo");
    await page.goto(`${app.webUrl}#/items/${popular}`);
    await page.locator("#catalogue").waitFor();
    expect(await page.locator("#catalogue").textContent()).toContain("Walnut desk lamp");
    expect(await page.locator("#catalogue .label").textContent()).toBe("promo");
    await page.screenshot({ path: join(SHOTS, "item-titled.png"), fullPage: true });
  });

  it("receives a trending update over SSE without reloading the page", async () => {
    await page.goto(`${app.webUrl}#/trending`);
    const hour = page.locator('[data-trending="1h"] tbody tr');
    await hour.first().waitFor();
    // Marks this page load: a reload would lose it.
    await page.evaluate(() => ((globalThis as unknown as { loadMark: number }).loadMark = 42));
    expect(await page.locator('[data-trending="1h"] tr[data-item-id="hot-item"]').count()).toBe(0);
    // A burst of views for a new item in the newest 1 h window puts it at the top.
    const r = rng(99);
    const js = nc.jetstream();
    const newest = Math.max(...log.map((e) => Date.parse(String(e.event_ts))));
    // More views than any item of the newest 1 h window can score, from the log itself: the list
    // on the page may still be partial (a partition's part not merged yet) and its top lower.
    const weights: Record<string, number | undefined> = cfg.pipeline.trendingWeights;
    const windowStart = newest - (newest % H);
    const scores = new Map<string, number>();
    for (const e of log) {
      const ts = Date.parse(String(e.event_ts));
      if (ts < windowStart) continue;
      const item = String(e.item_id);
      scores.set(item, (scores.get(item) ?? 0) + (weights[String(e.event_type)] ?? 0));
    }
    const bound = Math.max(0, ...scores.values());
    expect(bound).toBeGreaterThan(0);
    for (let i = 0; i < Math.max(60, bound + 10); i++) {
      const e = {
        event_id: seededUuid(r),
        event_type: "view",
        event_ts: new Date(newest + 1000 + i).toISOString(),
        user_id: `fan${i}`,
        item_id: "hot-item",
        category_code: "toys.sub1",
      };
      await js.publish("events.view", JSON.stringify(e));
    }
    const hot = page.locator('[data-trending="1h"] tr[data-item-id="hot-item"]');
    await hot.waitFor({ timeout: 20_000 });
    // Partial counts arrive first (update mode): the row climbs in place to the top.
    await expect.poll(() => hot.locator("td.rank").textContent(), { timeout: 20_000 }).toBe("1");
    expect(
      await page.evaluate(() => (globalThis as unknown as { loadMark?: number }).loadMark),
    ).toBe(42);
    // Each list says what its scores count: the e-commerce weights in force.
    expect(
      await page
        .locator('[data-weights]:near([data-trending="1h"])')
        .first()
        .getAttribute("data-weights"),
    ).toBe("view=1,click=2,cart=3,purchase=5");
    await page.screenshot({ path: join(SHOTS, "trending.png"), fullPage: true });
  });

  it("shows the pipeline per stage, the overview and the quality room, with no page errors", async () => {
    await page.goto(`${app.webUrl}#/pipeline`);
    await page.locator('#stages tr[data-stage="parse"]').waitFor();
    const stages = await page
      .locator("#stages tbody tr")
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-stage")));
    expect(stages).toEqual(expect.arrayContaining(["parse", "window", "trending"]));
    await page.locator("#slowest").waitFor();
    await page.waitForTimeout(2500); // a second poll: the charts have two points
    await page.screenshot({ path: join(SHOTS, "pipeline.png"), fullPage: true });
    await page.goto(`${app.webUrl}#/`);
    await page.locator('[data-trending="24h"] tbody tr').first().waitFor();
    await page.locator("#kpis").waitFor();
    await page.screenshot({ path: join(SHOTS, "overview.png"), fullPage: true });
    await page.goto(`${app.webUrl}#/quality`);
    await page.locator("text=Prequential hit rate").waitFor();
    // Each prequential row says how many events it rests on; below the minimum, no figure.
    const q = (await (await fetch(`${app.webUrl.replace(/\/$/, "")}/v1/quality`)).json()) as {
      minimums: { scoredEvents: number };
      prequential: { method: string; window: string; cases: number }[];
    };
    const min = q.minimums.scoredEvents;
    expect(min).toBe(100);
    const all = q.prequential.filter((p) => p.window === "all");
    expect(all.length).toBeGreaterThan(0);
    await page.locator("table.methods tbody tr").first().waitFor();
    for (const p of all) {
      const row = page.locator(`table.methods tr[data-method="${p.method}"]`);
      // The page polls every 3 s: the counts may have moved on since the API was read.
      await expect
        .poll(async () => {
          const text = await row.innerText();
          const cases = Number(/([\d,]+)/.exec(text)?.[1]?.replace(/,/g, "") ?? "-1");
          return cases < min
            ? text.includes(`too few events (${cases} < ${min})`) && !/\d\.\d/.test(text)
            : text.includes(`(${cases.toLocaleString("en")} events)`);
        })
        .toBe(true);
    }
    await page.screenshot({ path: join(SHOTS, "quality.png"), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});
