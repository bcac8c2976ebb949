import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { connect, type NatsConnection } from "nats";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { generateRees46Csv } from "./helpers/events.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { replayFile } from "../bin/replay/run.js";
import { createRecoClient, type RecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";

/*
 * A replay of an e-commerce log in the REES46 schema gives results a
 * reviewer can reproduce with a SQL query. A generated REES46 CSV (30 hours, so the 24 h interest
 * horizon cuts into it) goes through the real replay tool into the real app; every user's
 * recommendations and top categories must equal what the SQL of docs/HOW-IT-WORKS.md computes from the same file
 * with SQLite (Python's sqlite3 module, loading the CSV as the sqlite3 shell's `.import --csv`
 * does). The expected values come from SQL, not from the test's reference implementation.
 */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "..");
const H = 3_600_000;

/** The ```sql block of docs/HOW-IT-WORKS.md's "Checking results with SQL" section. */
async function readmeSql(): Promise<string> {
  const doc = await readFile(join(root, "docs", "HOW-IT-WORKS.md"), "utf8");
  const at = doc.indexOf("## Checking results with SQL");
  expect(
    at,
    "docs/HOW-IT-WORKS.md has a 'Checking results with SQL' section",
  ).toBeGreaterThanOrEqual(0);
  const m = /```sql\n([\s\S]*?)```/.exec(doc.slice(at));
  expect(m, "an sql block in it").not.toBeNull();
  return m![1]!;
}

/** Loads the CSV into table `events` (every column TEXT, as `.import --csv`), runs the SQL. */
const PYTHON = `
import csv, json, sqlite3, sys
db = sqlite3.connect(":memory:")
with open(sys.argv[1], newline="") as f:
    rows = csv.reader(f)
    header = next(rows)
    db.execute("CREATE TABLE events (%s)" % ", ".join('"%s" TEXT' % c for c in header))
    db.executemany("INSERT INTO events VALUES (%s)" % ", ".join("?" * len(header)), rows)
with open(sys.argv[2]) as f:
    db.executescript(f.read())
out = {}
for view, order in (("top_categories", "user_id, rank"),
                    ("recommendations", "user_id, rank"),
                    ("popularity", "product_id")):
    cur = db.execute("SELECT * FROM %s ORDER BY %s" % (view, order))
    names = [d[0] for d in cur.description]
    out[view] = [dict(zip(names, r)) for r in cur]
out["users"] = [r[0] for r in db.execute("SELECT DISTINCT user_id FROM events ORDER BY user_id")]
out["sqlite"] = sqlite3.sqlite_version
print(json.dumps(out))
`;

interface SqlResult {
  top_categories: { user_id: string; category: string; interest: number; rank: number }[];
  recommendations: {
    user_id: string;
    rank: number;
    product_id: string;
    score: number;
    source: string;
  }[];
  popularity: { product_id: string; purchases: number; category: string; avg_price: number }[];
  users: string[];
  sqlite: string;
}

async function runSql(csv: string, sql: string, dir: string): Promise<SqlResult> {
  const sqlFile = join(dir, "check.sql");
  await writeFile(sqlFile, sql);
  const { stdout } = await run("python3", ["-c", PYTHON, csv, sqlFile], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout) as SqlResult;
}

const round = (x: number) => Math.round(x * 1e9) / 1e9;

/** user -> [recommended items as [id, score, source, purchases, avg price], top categories] */
type Answers = Record<string, [[string, number, string, number, number][], [string, number][]]>;

function expectedAnswers(r: SqlResult): Answers {
  const pop = new Map(r.popularity.map((p) => [p.product_id, p]));
  const out: Answers = {};
  for (const u of r.users) out[u] = [[], []];
  for (const x of r.recommendations) {
    if (x.rank > 10) continue;
    const p = pop.get(x.product_id)!;
    out[x.user_id]![0].push([
      x.product_id,
      round(x.score),
      x.source,
      p.purchases,
      round(p.avg_price),
    ]);
  }
  for (const t of r.top_categories) out[t.user_id]![1].push([t.category, t.interest]);
  return out;
}

async function observeAnswers(client: RecoClient, users: string[]): Promise<Answers> {
  const out: Answers = {};
  for (let k = 0; k < users.length; k += 32) {
    const chunk = users.slice(k, k + 32);
    const answers = await Promise.all(chunk.map((u) => client.getRecommendations(u, 10)));
    answers.forEach((a, j) => {
      out[chunk[j]!] = [
        a.items.map((i) => [
          i.itemId,
          round(i.score),
          i.source === Source.PERSONALIZED ? "PERSONALIZED" : "POPULAR_FALLBACK",
          Number(i.purchases),
          round(i.averagePrice),
        ]),
        a.topCategories.map((c) => [c.category, Number(c.interest)]),
      ];
    });
  }
  return out;
}

describe("a REES46 log replayed with reco replay, checked with the SQL of docs/HOW-IT-WORKS.md", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;
  let nc: NatsConnection;
  let client: RecoClient;
  let csv: string;
  let sql: SqlResult;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-rees46-"));
    csv = join(dir, "2019-Oct-sample.csv");
    await writeFile(
      csv,
      generateRees46Csv({
        seed: 46,
        rows: 4000,
        users: 150,
        products: 90,
        start: Date.UTC(2019, 9, 1, 6, 0, 0),
        spanMs: 30 * H,
      }),
    );
    sql = await runSql(csv, await readmeSql(), dir);
    nats = await setupNats();
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        PARTITIONS: "4",
        // The SQL's "now" is the last event time: no idle marker may move it on.
        IDLE_TIMEOUT_MS: "0",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
    nc = await connect({ servers: nats.url });
    client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  });
  afterAll(async () => {
    client?.close();
    await nc?.close();
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("exercises what the SQL checks: the 24 h horizon, purchase exclusion, fallback and fill", async () => {
    const expected = expectedAnswers(sql);
    const users = Object.values(expected);
    const sources = (a: Answers[string]) => new Set(a[0].map((i) => i[2]));
    // Users answered only from the popular list (no category interest), some partly, some not.
    expect(users.filter((a) => a[1].length === 0).length).toBeGreaterThan(0);
    expect(users.filter((a) => sources(a).size === 2).length).toBeGreaterThan(5);
    expect(users.filter((a) => a[0].every((i) => i[2] === "PERSONALIZED")).length).toBeGreaterThan(
      20,
    );
    // The 24 h interest horizon cuts into the 30 h log: top categories differ without it.
    const noHorizon = await runSql(
      csv,
      (await readmeSql()).replaceAll("now - 86400000", "now - 1e15"),
      dir,
    );
    const top = (r: SqlResult) => JSON.stringify(r.top_categories);
    expect(top(noHorizon)).not.toBe(top(sql));
    // Excluding a user's own purchases changes some answers.
    const noExclusion = await runSql(
      csv,
      (await readmeSql()).replace(
        "FROM recent WHERE event_type = 'purchase'",
        "FROM recent WHERE 0",
      ),
      dir,
    );
    const changed = sql.users.filter(
      (u) =>
        JSON.stringify(expectedAnswers(noExclusion)[u]) !== JSON.stringify(expectedAnswers(sql)[u]),
    );
    expect(changed.length).toBeGreaterThan(5);
    console.log(
      `REES46 sample: 4000 rows, ${sql.users.length} users, ${sql.popularity.length} products ` +
        `purchased; SQLite ${sql.sqlite}; ${changed.length} answers change without the exclusion`,
    );
  });

  it("gives every user the recommendations and top categories the SQL computes", async () => {
    const summary = await replayFile({ file: csv, nc });
    expect(summary).toMatchObject({ format: "rees46", sent: 4000, rejected: 0 });
    const expected = expectedAnswers(sql);
    const users = Object.keys(expected);
    const want = JSON.stringify(expected);
    let actual: Answers = {};
    let hits = 0;
    for (const until = Date.now() + 30_000; hits < 2 && Date.now() < until;) {
      actual = await observeAnswers(client, users);
      hits = JSON.stringify(actual) === want ? hits + 1 : 0;
      if (hits < 2) await new Promise((r) => setTimeout(r, 200));
    }
    const differing = users.filter(
      (u) => JSON.stringify(actual[u]) !== JSON.stringify(expected[u]),
    );
    expect(
      differing.slice(0, 3).map((u) => ({ user: u, sql: expected[u], grpc: actual[u] })),
    ).toEqual([]);
    const shown = users.slice(0, 2);
    for (const u of shown)
      console.log(
        `user ${u}: top categories ${JSON.stringify(actual[u]![1])}, ` +
          `items ${actual[u]![0].map(([i, s]) => `${i}:${s}`).join(" ")}`,
      );
  });
});
