import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { App } from "../bin/app.js";
import { replayFile } from "../bin/replay/run.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { blend } from "../actors/sources/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startTestApp } from "./helpers/app.js";

/*
 * What the preset counts as done never comes back, whatever the length of a user's history: a
 * MovieLens heavy rater (2,698 ratings for user 414, far beyond the 200 items history ranks) is
 * served no film they rated. And an item the user touched is labelled as theirs.
 */

const data = resolve(import.meta.dirname, "..", "..", "shared", "data", "ml-latest-small");
// The five heaviest raters of ml-latest-small (2,698 to 1,346 ratings) and two light ones.
const USERS = ["414", "599", "474", "448", "274", "610", "1"];

describe("the blend's labels", () => {
  it("serve an item the user touched as HISTORY with what they did, whichever source ranked it", () => {
    const items = blend(
      {
        SIMILAR_ITEMS: [
          { item: "viewed", score: 3, why: "viewed together with x" },
          { item: "new", score: 2, why: "viewed together with x" },
        ],
        POPULAR_FALLBACK: [{ item: "p", score: 1, why: "popular" }],
      },
      { weights: { SIMILAR_ITEMS: 1 }, mode: "score" },
      {
        n: 3,
        touched: new Set(["viewed", "p"]),
        touchedWhy: (i) =>
          i === "viewed" ? "you viewed it 3 times" : i === "p" ? "in your cart" : undefined,
      },
    );
    expect(items.map((x) => [x.item, x.source, x.explanation])).toEqual([
      ["viewed", "HISTORY", "you viewed it 3 times"],
      ["new", "SIMILAR_ITEMS", "viewed together with x"],
      ["p", "HISTORY", "in your cart"],
    ]);
  });
});

describe("done items through the real app (MovieLens: the heavy raters and a quarter of the rest)", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;
  let client: RecoClient;
  const rated = new Map<string, Set<string>>();

  beforeAll(async () => {
    const ratings = join(data, "ratings.csv");
    if (!existsSync(ratings))
      throw new Error(`MovieLens logs missing: expected ${ratings} (../shared/data)`);
    // Every rating of the users asked below, and of every fourth other user (the films' co-visits
    // and popularity): a third of the log, the heavy raters' whole histories.
    const [header, ...lines] = readFileSync(ratings, "utf8").trim().split("\n");
    const kept = [header!];
    for (const line of lines) {
      const [u, m] = line.split(",");
      if (!u || !m) continue;
      if (!USERS.includes(u) && Number(u) % 4 !== 0) continue;
      kept.push(line);
      let s = rated.get(u);
      if (!s) rated.set(u, (s = new Set()));
      s.add(m);
    }
    dir = await mkdtemp(join(tmpdir(), "reco-done-"));
    const log = join(dir, "ratings.csv");
    writeFileSync(log, `${kept.join("\n")}\n`);
    nats = await setupNats();
    app = await startTestApp(nats.url, dir, {
      PARTITIONS: "2",
      PRESET: "movies",
      MOVIES_CATALOG: join(data, "movies.csv"),
      IDLE_TIMEOUT_MS: "1500",
      // Online quality only watches the answers; without it the replay of every rating is faster.
      QUALITY: "off",
    });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    const s = await replayFile({
      file: log,
      natsUrl: nats.url,
      moviesFile: join(data, "movies.csv"),
      // The whole suite runs beside it on two cores: a condition, waited for.
      awaitEngineMs: 200_000,
      metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
    });
    expect(s.engine?.caughtUp, s.engine?.note).toBe(true);
  }, 300_000);
  afterAll(async () => {
    client?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves no heavy rater a film they rated", async () => {
    for (const u of USERS) {
      const res = await client.getRecommendations(u, 10);
      expect(res.items.length, `user ${u}`).toBe(10);
      const again = res.items.filter((i) => rated.get(u)!.has(i.itemId)).map((i) => i.itemId);
      expect({ u, again }).toEqual({ u, again: [] });
    }
  });

  it("with exclude_touched too, and never labels a film by another's history", async () => {
    for (const u of USERS) {
      const res = await client.getRecommendations(u, 20, { excludeTouched: true });
      expect(res.items.length, `user ${u}`).toBe(20);
      expect(res.items.filter((i) => rated.get(u)!.has(i.itemId))).toEqual([]);
      expect(res.items.filter((i) => i.source === Source.HISTORY)).toEqual([]);
    }
  });
});
