import { afterAll, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import {
  childrenDown,
  gauges,
  stageIds,
  stagesBehind,
  stagesMissing,
} from "./helpers/positions.js";
import { replayFile } from "../bin/replay/run.js";
import { sleep } from "./helpers/harness.js";
import { killGroup, spawnReco, type AppProcess } from "./helpers/app-process.js";

/*
 * The item catalogue is state like any other: a `reco start` SIGKILLed while events and item
 * upserts arrive (the upserts partly while it is down) ends with the same catalogue, and the same
 * answers with a hidden item left out, as a run without the kill. Its two inputs (events by item
 * partition, upserts in their stream) are applied at different paces in the two runs.
 */

const root = resolve(import.meta.dirname, "..");
const LOG = resolve(root, "../shared/data/rees46/2019-Oct-head.csv");
const ROWS = 3000;

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
});

const KEY = "catalogue-kill-key-0123";

async function startApp(
  natsUrl: string,
  dataDir: string,
  serveProcess: boolean,
): Promise<AppProcess> {
  const app = await spawnReco({
    env: {
      NATS_URL: natsUrl,
      DATA_DIR: dataDir,
      PARTITIONS: "3",
      RANKER: "design",
      IDLE_TIMEOUT_MS: "0",
      SNAPSHOT_INTERVAL: "300",
      LOG_LEVEL: "warn",
      API_KEYS: KEY,
      SERVE_PROCESS: serveProcess ? "1" : "0",
    },
    webPort: true,
    detached: true,
    spawned: (a) => cleanups.push(() => killGroup(a)),
    // Health answers before the JSON API listens (the serving process starts it last): the
    // test's PUT waits for the API itself.
    ready: async (a) =>
      (await fetch(`http://127.0.0.1:${a.webPort}/openapi.json`).catch(() => undefined))?.ok ===
      true,
    timeoutMs: 90_000,
    pollMs: 100,
  });
  return app;
}

/** Upserts of items of the slice: titles, a price, labels, one hidden and one unhidden again. */
function upserts(items: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = items.slice(0, 12).map((id, k) => ({
    item_id: id,
    title: `Product ${k}`,
    ...(k % 3 === 0 ? { price: k + 0.5, labels: [`l${k}`] } : {}),
  }));
  out.push({ item_id: items[0], hidden: true }, { item_id: items[1], hidden: true });
  out.push({ item_id: items[1], hidden: false, brand: "house" }, { item_id: items[2], price: 1 });
  out.push({ item_id: "last", labels: ["done"] });
  return out;
}

async function until(what: string, app: AppProcess, ok: () => Promise<boolean>) {
  for (const end = Date.now() + 120_000; Date.now() < end; await sleep(250))
    if (await ok().catch(() => false)) return;
  throw new Error(`timed out waiting for ${what}\n${app.output()}`);
}

/** A run; the killed one serves from a process of its own (SERVE_PROCESS=1), through its replica. */
async function run(file: string, items: string[], users: string[], kill: boolean) {
  const nats: TestNats = await setupNats();
  cleanups.push(() => nats.cleanup());
  const dir = await mkdtemp(join(tmpdir(), "reco-catkill-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  let app = await startApp(nats.url, join(dir, "data"), kill);
  const nc: NatsConnection = await connect({ servers: nats.url });
  cleanups.push(() => nc.close());
  const js = nc.jetstream();
  const all = upserts(items);
  const send = async (from: number, to: number) => {
    for (let k = from; k < to; k++)
      await js.publish("items.upsert", JSON.stringify(all[k]), { msgID: `u${k}` });
  };
  await send(0, 8);
  const replay = replayFile({ file, nc, ...(kill ? { rate: 1500 } : {}) });
  if (kill) {
    await sleep(900); // snapshots (every 300 ms) taken, events and upserts half applied
    await killGroup(app);
    await send(8, all.length - 1); // while the engine is down
    app = await startApp(nats.url, join(dir, "data"), kill);
  } else await send(8, all.length - 1);
  const summary = await replay;
  expect(summary.rejected).toBe(0);
  const web = `http://127.0.0.1:${app.webPort}`;
  const put = await fetch(`${web}/v1/items/${items[3]}`, {
    method: "PUT",
    headers: { "content-type": "application/json", "x-api-key": KEY },
    body: JSON.stringify({ labels: ["via-http"] }),
  });
  expect(put.status).toBe(200);
  expect(await put.json()).toMatchObject({ title: "Product 3", labels: ["via-http"] });
  await send(all.length - 1, all.length);
  const jsm = await nc.jetstreamManager();
  const ids = stageIds("design", 3);
  await until("the stages to catch up", app, async () => {
    const positions = await gauges(app.metricsPort, "reco_stage_position");
    return (
      stagesMissing(ids, positions) === 0 &&
      (await stagesBehind(jsm, positions)) === 0 &&
      (await childrenDown(app.metricsPort)) === 0
    );
  });
  const item = async (id: string) =>
    ((await (await fetch(`${web}/v1/items/${id}`)).json()) as { catalogue: unknown }).catalogue;
  await until("the last upsert", app, async () =>
    JSON.stringify(await item("last")).includes("done"),
  );
  await sleep(500); // the stages' last bucket writes reach the catalogue's watch
  const catalogue: Record<string, unknown> = {};
  for (const id of items) {
    const c = (await item(id)) as Record<string, unknown> | null;
    // The upserts' stored times differ between the two runs' servers: all else must agree.
    if (c) catalogue[id] = { ...c, updatedAt: undefined };
  }
  const answers: Record<string, unknown> = {};
  for (const u of users)
    answers[u] = await (await fetch(`${web}/v1/users/${u}/recommendations?n=10`)).json();
  await killGroup(app);
  return { catalogue, answers };
}

describe("the item catalogue under SIGKILL", () => {
  it("is the catalogue, and gives the answers, of a run without the kill (served apart)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "reco-catkill-log-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const lines = (await readFile(LOG, "utf8")).split("\n").slice(0, ROWS + 1);
    const file = join(dir, "slice.csv");
    await writeFile(file, lines.join("\n") + "\n");
    const rows = lines.slice(1).filter((l) => l !== "");
    // The most purchased items first: the fallback's list, which every answer below shows.
    const bought = new Map<string, number>();
    for (const l of rows) {
      const f = l.split(",");
      if (f[1] === "purchase") bought.set(f[2]!, (bought.get(f[2]!) ?? 0) + 1);
    }
    const top = [...bought].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map((e) => e[0]);
    const others = [...new Set(rows.map((l) => l.split(",")[2]!))].filter((i) => !bought.has(i));
    const items = [...top, ...others.slice(0, 40)];
    const users = ["nobody-known", ...new Set(rows.map((l) => l.split(",")[7]!))].slice(0, 6);
    const a = await run(file, items, users, false);
    const b = await run(file, items, users, true);
    // What the comparison rests on: titles and a hidden item, learned brands and prices.
    const cat = a.catalogue as Record<string, { title: string; hidden: boolean; brand: string }>;
    expect(cat[items[0]!]).toMatchObject({ title: "Product 0", hidden: true });
    expect(cat[items[1]!]).toMatchObject({ hidden: false, brand: "house" });
    expect(cat[items[3]!]).toMatchObject({ labels: ["via-http"] });
    expect(
      Object.values(cat).filter((c) => c.brand !== "" && c.title === "").length,
    ).toBeGreaterThan(5);
    const cold = a.answers["nobody-known"] as { items: { itemId: string; title?: string }[] };
    // The best seller is hidden: the popular fallback is the top ten of the others.
    expect(cold.items).toHaveLength(10);
    expect(cold.items.map((i) => i.itemId)).not.toContain(items[0]);
    expect(cold.items.map((i) => i.itemId)).toContain(top[10]);
    expect(cold.items.map((i) => i.itemId)).toContain(items[1]);
    expect(b.catalogue).toEqual(a.catalogue);
    expect(b.answers).toEqual(a.answers);
  }, 400_000);
});
