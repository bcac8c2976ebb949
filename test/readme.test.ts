import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { freePort } from "../connectors/nats/embedded-server.js";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";
import { formatSummary, replayFile } from "../bin/replay/run.js";
import { createRecoClient } from "../connectors/grpc/index.js";
import { Source } from "../proto/gen/reco/v1/reco_pb.js";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "..");

/** The ```ts block that follows a README heading. */
async function exampleAfter(heading: string): Promise<string> {
  const readme = await readFile(join(root, "README.md"), "utf8");
  const at = readme.indexOf(`## ${heading}`);
  expect(at, `README has a "${heading}" section`).toBeGreaterThanOrEqual(0);
  const m = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  expect(m, `a ts example under "${heading}"`).not.toBeNull();
  return m![1]!.replaceAll('"./', `"${root}/`);
}

const withoutNatsUrl = (env: NodeJS.ProcessEnv) => {
  const rest = { ...env };
  delete rest.NATS_URL;
  return rest;
};

describe("the README's examples", () => {
  let app: App;
  let dir: string;

  // As a user runs it: `npm start`'s private nats-server, with the credentials it keeps in
  // DATA_DIR; the publishing example finds them there.
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-readme-"));
    app = await startApp(
      loadConfig({
        NATS_PORT: String(await freePort()),
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
  });
  afterAll(async () => {
    await app?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const runExample = async (name: string, code: string) => {
    // Inside the repo, so "nats" and the repo's modules resolve.
    const file = join(root, "test", `.readme-${name}-${process.pid}.ts`);
    await writeFile(file, code);
    try {
      return await run(join(root, "node_modules", ".bin", "tsx"), [file], {
        env: {
          ...withoutNatsUrl(process.env),
          DATA_DIR: join(dir, "data"),
          GRPC_ADDR: `127.0.0.1:${app.grpcPort}`,
        },
        timeout: 30_000,
      });
    } finally {
      await rm(file, { force: true });
    }
  };

  // The README's list missed four metrics. Every reco_ and grpc_ metric the
  // app serves is in the README's table with its labels, and the table lists nothing else; and
  // every labelled counter has a series before anything happened.
  it("lists every metric of /metrics with its labels, and each has a series from the start", async () => {
    const text = await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text();
    const served = new Map<string, Set<string>>();
    for (const m of text.matchAll(/^# TYPE ((?:reco|grpc)_\w+) (\w+)$/gm))
      served.set(m[1]!, new Set());
    for (const m of text.matchAll(/^((?:reco|grpc)_\w+?)(?:_bucket|_sum|_count)?\{([^}]*)\}/gm)) {
      const base = served.has(m[1]!) ? m[1]! : m[1]!.replace(/_(bucket|sum|count)$/, "");
      for (const l of m[2]!.matchAll(/(\w+)="/g)) if (l[1] !== "le") served.get(base)?.add(l[1]!);
    }
    const ops = await readFile(join(root, "docs", "OPERATIONS.md"), "utf8");
    const section = ops.slice(ops.indexOf("**Metrics.**"), ops.indexOf("## Running on a cluster"));
    const listed = new Map<string, Set<string>>();
    for (const m of section.matchAll(/^\| `((?:reco|grpc)_\w+)(?:\{([\w,]*)\})?`/gm))
      listed.set(m[1]!, new Set(m[2] ? m[2].split(",") : []));
    expect([...listed.keys()].sort()).toEqual([...served.keys()].sort());
    // Labels as served; a metric without a series yet (no gRPC call so far) shows none.
    for (const [name, labels] of served)
      if (labels.size > 0) expect([...listed.get(name)!].sort(), name).toEqual([...labels].sort());
    // Series at 0 before any event: the labelled counters the dashboards and alerts read.
    for (const series of [
      'reco_stage_errors_total{stage="window",partition="0"} 0',
      'reco_stage_restarts_total{stage="parse",partition="0"} 0',
      'reco_dlq_poison_total{stage="trending",partition="1"} 0',
      'reco_stage_duplicate_batches_total{stage="watermark",partition="0"} 0',
      'reco_events_late_total{stage="watermark"} 0',
      'reco_events_dead_lettered_total{reason="bad_json"} 0',
      'reco_stage_records_out_total{stage="popularity-join",partition="0"} 0',
    ])
      expect(text).toContain(series);
    expect(text).toMatch(
      /^reco_build_info\{version="\d+\.\d+\.\d+",commit="[0-9a-f]{12}|unknown",node="\d+\.\d+\.\d+"\} 1$/m,
    );
  });

  it("publishes an event that the pipeline accepts, then recommends from it", async () => {
    const publisher = await exampleAfter("Publish events");
    await runExample("publish", publisher);
    // A second buyer of another phone gives u1 (who bought p1) a personalised candidate.
    const second = publisher.replace(
      /user_id: "u1",(\s*)item_id: "p1"/,
      'user_id: "u2",$1item_id: "p2"',
    );
    expect(second).not.toBe(publisher);
    await runExample("publish2", second);
    const client = await exampleAfter("Ask for recommendations");
    // u1: electronics interest 1 × p2's 1 purchase / 100 = 0.01. p1, which u1 bought, is not a
    // personalised candidate but fills the list from the overall top (score 0.1).
    const EXPECTED = "1 p2 0.010 personalised\n2 p1 0.100 fallback";
    let out = "";
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      out = (await runExample("grpc", client)).stdout;
      if (out.trim() === EXPECTED) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(out.trim()).toBe(EXPECTED);
  });
});

/** The ```sh blocks of the README's "Run it" section, joined. */
async function runItCommands(): Promise<string> {
  const readme = await readFile(join(root, "README.md"), "utf8");
  const from = readme.indexOf("## Run it");
  const section = readme.slice(from, readme.indexOf("\n## ", from + 1));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]).join("\n");
}

/** The SQL check of docs/HOW-IT-WORKS.md run with Python's sqlite3 on a CSV: rows of its last SELECT. */
async function readmeSqlRows(csv: string): Promise<string[][]> {
  const doc = await readFile(join(root, "docs", "HOW-IT-WORKS.md"), "utf8");
  const sql = /```sql\n([\s\S]*?)```/.exec(doc.slice(doc.indexOf("## Checking results")))![1]!;
  const py = `
import csv, json, sqlite3, sys
db = sqlite3.connect(":memory:")
rows = list(csv.reader(open(sys.argv[1], newline="")))
db.execute("CREATE TABLE events (%s)" % ",".join('"%s" TEXT' % c for c in rows[0]))
db.executemany("INSERT INTO events VALUES (%s)" % ",".join("?" * len(rows[0])), rows[1:])
script = sys.stdin.read().strip().rstrip(";")
*setup, top, recs = [s for s in script.split(";") if s.strip()]
db.executescript(";".join(setup) + ";")
print(json.dumps([[str(v) for v in r] for r in db.execute(recs).fetchall()]))
`;
  const child = execFile("python3", ["-c", py, csv]);
  child.stdin!.end(sql);
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once("exit", r));
  return JSON.parse(out) as string[][];
}

// The README's user ids did not exist in the REES46 sample, and its SQL check
// printed nothing; point 3: a live event after a replay of 2019 moves event time to today.
describe("the README on the REES46 sample in ../shared/data", () => {
  const sample = resolve(root, "..", "shared", "data", "rees46", "2019-Oct-head.csv");
  let nats: TestNats;
  let app: App;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(sample)) throw new Error(`REES46 sample missing: expected ${sample}`);
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-readme-rees46-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        WEB_PORT: "0",
        IDLE_TIMEOUT_MS: "0",
        // These tests check the design ranking (DESIGN §3.4–3.6): RANKER=design.
        RANKER: "design",
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

  it("links nothing outside the repository, and every linked file exists", async () => {
    const readme = await readFile(join(root, "README.md"), "utf8");
    const links = [...readme.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)].map((m) => m[1]!);
    expect(links).toContain("docs/DESIGN.md");
    for (const link of links.filter((l) => !/^[a-z]+:/.test(l))) {
      expect(link.startsWith("../"), `${link} leaves the repository`).toBe(false);
      expect(existsSync(join(root, link)), `${link} exists`).toBe(true);
    }
    // The docs' links too, each from its own folder.
    for (const doc of ["docs", "bench", "deploy"].flatMap((d) =>
      readdirSync(join(root, d))
        .filter((f) => f.endsWith(".md"))
        .map((f) => join(d, f)),
    )) {
      const text = await readFile(join(root, doc), "utf8");
      for (const m of text.matchAll(/\]\(([^)#\s]+)[^)]*\)/g)) {
        const link = m[1]!;
        if (/^[a-z]+:/.test(link)) continue;
        expect(existsSync(join(root, dirname(doc), link)), `${doc} links ${link}`).toBe(true);
      }
    }
  });

  it("is the newcomer's path: about 300 lines at most, reference material in docs/", async () => {
    const readme = await readFile(join(root, "README.md"), "utf8");
    expect(readme.split("\n").length).toBeLessThanOrEqual(300);
    expect(readme).not.toMatch(/\bsession \d+|\bissue \d+/i);
  });

  it("replays the sample, and its user gets the answer the README's SQL computes", async () => {
    const commands = await runItCommands();
    expect(commands).toContain("npx reco replay ../shared/data/rees46/2019-Oct-head.csv");
    const user = /npx reco recommend (\d+)/.exec(commands)![1]!;
    const s = await replayFile({
      file: sample,
      natsUrl: nats.url,
      awaitEngineMs: 60_000,
      metricsUrl: `http://127.0.0.1:${app.metricsPort}/metrics`,
    });
    // What the README shows.
    const shown = /```\n(read \d+ rows[^\n]*)\n(engine[^\n]*)\n```/.exec(
      await readFile(join(root, "README.md"), "utf8"),
    )!;
    const [summary, engine] = formatSummary(s).split("\n");
    const stable = (line: string) => line.replace(/\d+\.\ds|\(\d+ events\/s\)/g, "…");
    expect(stable(summary!)).toBe(stable(shown[1]!));
    expect(stable(engine!)).toBe(stable(shown[2]!));

    // reco_state_bytes follows the stores on disk (it read 246 bytes for 30 s with 2.7 MB).
    const scraped = Number(
      /^reco_state_bytes (\d+)$/m.exec(
        await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text(),
      )![1],
    );
    const onDisk = await du(join(dir, "data", "state"));
    expect(scraped).toBeGreaterThan(onDisk / 2);
    expect(scraped).toBeLessThan(onDisk * 2 + 1_000_000);

    const sql = (await readmeSqlRows(sample)).map(([, rank, item, , source]) => [
      Number(rank),
      item,
      source,
    ]);
    expect(sql.length).toBe(10);
    expect(sql.some(([, , source]) => source === "PERSONALIZED")).toBe(true);
    const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
    try {
      const res = await client.getRecommendations(user, 10);
      expect(res.items.map((i) => [i.rank, i.itemId, Source[i.source]])).toEqual(sql);

      // The README's buf curl call, as printed, against this app's port.
      const bufCall = /npx buf curl ([\s\S]*?GetRecommendations)/.exec(
        await readFile(join(root, "README.md"), "utf8"),
      )![1]!;
      const args = bufCall
        .replace(/\\\n\s*/g, "")
        .replace("$(npx reco url grpc)", `127.0.0.1:${app.grpcPort}`)
        .match(/'[^']*'|"[^"]*"|\S+/g)!
        .map((a) => a.replace(/^['"]|['"]$/g, ""));
      const { stdout } = await run(join(root, "node_modules", ".bin", "buf"), ["curl", ...args], {
        timeout: 30_000,
      });
      expect((JSON.parse(stdout) as { items: { itemId: string }[] }).items[0]!.itemId).toBe(
        sql[0]![1],
      );

      // A live event of today after the 2019 log: the user's history is now beyond the horizon.
      const publish = await exampleAfter("Publish events");
      const file = join(root, "test", `.readme-live-${process.pid}.ts`);
      await writeFile(file, publish);
      try {
        await run(join(root, "node_modules", ".bin", "tsx"), [file], {
          env: { ...process.env, NATS_URL: nats.url },
          timeout: 30_000,
        });
      } finally {
        await rm(file, { force: true });
      }
      let status = "";
      for (const until = Date.now() + 30_000; Date.now() < until;) {
        status = (await client.getRecommendations(user, 3)).statusMessage;
        if (status.startsWith("history")) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(status).toBe("history older than the 24 h horizon: popular fallback");
      expect(await readFile(join(root, "README.md"), "utf8")).toContain(
        "`history older than the 24 h horizon: popular fallback`",
      );
      expect((await client.getRecommendations("nobody-at-all", 3)).statusMessage).toBe(
        "unknown user: popular fallback",
      );
    } finally {
      client.close();
    }
  }, 120_000);
});

async function du(path: string): Promise<number> {
  const { readdir, stat } = await import("node:fs/promises");
  let total = 0;
  for (const e of await readdir(path, { withFileTypes: true }).catch(() => [])) {
    const p = join(path, e.name);
    total += e.isDirectory() ? await du(p) : (await stat(p)).size;
  }
  return total;
}
