import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { loadConfig } from "../bin/config.js";
import { startApp, type App } from "../bin/app.js";

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

describe("the README's examples", () => {
  let nats: TestNats;
  let app: App;
  let dir: string;

  beforeAll(async () => {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-readme-"));
    app = await startApp(
      loadConfig({
        NATS_URL: nats.url,
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: "0",
        LOG_LEVEL: "silent",
      }),
      pino({ level: "silent" }),
    );
  });
  afterAll(async () => {
    await app?.stop();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const runExample = async (name: string, code: string) => {
    // Inside the repo, so "nats" and the repo's modules resolve.
    const file = join(root, "test", `.readme-${name}-${process.pid}.ts`);
    await writeFile(file, code);
    try {
      return await run(join(root, "node_modules", ".bin", "tsx"), [file], {
        env: { ...process.env, NATS_URL: nats.url, GRPC_ADDR: `127.0.0.1:${app.grpcPort}` },
        timeout: 30_000,
      });
    } finally {
      await rm(file, { force: true });
    }
  };

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
