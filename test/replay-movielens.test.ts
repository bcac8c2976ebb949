import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pino } from "pino";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { formatSummary, replayFile } from "../bin/replay/run.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * MovieLens ratings.csv is ordered by user, not by time. Replayed in file
 * order, 99.8% of ml-latest-small's events were late on the user path (each user's ratings are
 * behind the newest rating of the users before). `reco replay` now sends a historical file in
 * event-time order and ends with what the engine made of it, read back from reco.late and the
 * dead-letter stream once the engine has caught up.
 */

const data = resolve(import.meta.dirname, "..", "..", "shared", "data", "ml-latest-small");
const SLICE = 15_000;

describe("a MovieLens replay through the real app", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;
  let slice: string;

  beforeAll(async () => {
    if (!existsSync(join(data, "ratings.csv")))
      throw new Error(`MovieLens logs missing: expected ${data}/ratings.csv (../shared/data)`);
    dir = await mkdtemp(join(tmpdir(), "reco-replay-ml-"));
    // The first rows of the real file: ~100 users, each with years of ratings.
    const lines = readFileSync(join(data, "ratings.csv"), "utf8").split("\n");
    slice = join(dir, "ratings-slice.csv");
    await writeFile(slice, `${lines.slice(0, SLICE + 1).join("\n")}\n`);
    nats = await setupNats();
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "2",
        PRESET: "movies",
        MOVIES_CATALOG: join(data, "movies.csv"),
        IDLE_TIMEOUT_MS: "0",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
  }, 60_000);
  afterAll(async () => {
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("leaves under 1% late, and says so at the end", async () => {
    const s = await replayFile({
      file: slice,
      natsUrl: nats.url,
      moviesFile: join(data, "movies.csv"),
      // Generous: the whole suite runs beside it on two cores (CI at load 12-15 needed > 60 s).
      awaitEngineMs: 200_000,
      metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
    });
    expect(s).toMatchObject({ rows: SLICE, sent: SLICE, rejected: 0, order: "sorted" });
    expect(s.engine?.caughtUp, s.engine?.note).toBe(true);
    const late = Object.values(s.engine!.late).reduce((a, b) => a + b, 0);
    expect(late).toBeLessThan(SLICE / 100);
    expect(s.engine!.dead).toEqual({});
    expect(s.engine!.duplicates).toBe(0);
    expect(formatSummary(s).split("\n")[1]).toMatch(
      /^engine \(caught up \d+\.\ds after the last event\): late (0|\[.*\]), dead-lettered 0, duplicates 0$/,
    );
  }, 240_000);

  it("counts what the engine found late: the same users' rows again, in file order", async () => {
    // Renamed, and in file order: same ids (from the rows' content), so within JetStream's
    // duplicate window nothing is stored twice; the rows of a new user go late.
    const copy = join(dir, "copy.csv");
    const lines = readFileSync(slice, "utf8").trimEnd().split("\n");
    await writeFile(copy, `${lines.join("\n")}\n999999,1,4.0,1\n`);
    const s = await replayFile({
      file: copy,
      natsUrl: nats.url,
      order: "file",
      awaitEngineMs: 60_000,
      metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
    });
    expect(s).toMatchObject({ sent: SLICE + 1, duplicates: SLICE });
    expect(s.engine?.caughtUp, s.engine?.note).toBe(true);
    // The one new row, of 1970, is behind the watermark on the user path.
    expect(s.engine!.late["behind_watermark:user"]).toBe(1);
  }, 120_000);
});
