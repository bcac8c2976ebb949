import { afterEach, describe, expect, it } from "vitest";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../connectors/nats/embedded-server.js";
import { createStageState, openStateDb, StateStoreCorruptError } from "../state/index.js";

/**
 * An overwritten LevelDB table file (`state/000005.ldb`) hung start-up (three
 * stages failing "Corruption: bad block type" every 5 s, gRPC and metrics never open, no path, no
 * advice); a corrupt `CURRENT` exited 1 with "Database failed to open" and no path. Now the store
 * is named with its path and the way out, in one line, and the process exits non-zero.
 */

const root = resolve(import.meta.dirname, "..");

/** A state store with real snapshots in table files, then every table file overwritten. */
async function corruptStore(path: string, stages: [string, number][]): Promise<void> {
  const db = await openStateDb(path);
  for (const [stage, partition] of stages) {
    const state = createStageState();
    const m = state.map<{ n: number; pad: string }>("profiles");
    for (let i = 0; i < 20_000; i++) m.set(`u${i}`, { n: i, pad: "x".repeat(40) });
    state.meta = { seq: 20_000 };
    await db.instance(stage, partition).write(state);
  }
  await db.compact();
  await db.close();
  const tables = (await readdir(path)).filter((f) => f.endsWith(".ldb"));
  expect(tables.length).toBeGreaterThan(0);
  for (const t of tables)
    await writeFile(join(path, t), randomBytes((await stat(join(path, t))).size));
}

/** `reco start` in its own process: exit code, output and how long it took. */
function runStart(env: Record<string, string>, timeoutMs: number) {
  return new Promise<{ code: number | null; out: string; ms: number }>((done) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      done({ code, out, ms: Date.now() - t0 });
    });
  });
}

describe("a corrupt state store", () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });
  const tmp = async () => {
    const d = await mkdtemp(join(tmpdir(), "reco-corrupt-"));
    dirs.push(d);
    return d;
  };

  it("an overwritten table file fails the load with the store's path and the way out", async () => {
    const path = join(await tmp(), "state");
    await corruptStore(path, [["popularity-join", 0]]);
    const db = await openStateDb(path);
    try {
      const err = await db
        .instance("popularity-join", 0)
        .load()
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StateStoreCorruptError);
      expect((err as Error).message).toContain(`the state store ${path} is corrupt`);
      expect((err as Error).message).toContain(`delete ${path}`);
    } finally {
      await db.close();
    }
  });

  it("a corrupt CURRENT fails the open with the store's path", async () => {
    const path = join(await tmp(), "state");
    const db = await openStateDb(path);
    await db.close();
    await writeFile(join(path, "CURRENT"), "MANIFEST-999999\n");
    const err = await openStateDb(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateStoreCorruptError);
    expect((err as Error).message).toContain(path);
  });

  const env = async (dir: string) => ({
    DATA_DIR: dir,
    NATS_PORT: String(await freePort()),
    GRPC_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    WEB_PORT: String(await freePort()),
    PARTITIONS: "2",
  });
  const fatalLines = (out: string) =>
    out.split("\n").filter((l) => l.includes('"level":60') && l.includes("is corrupt"));

  it("reco start exits non-zero at once, one line naming DATA_DIR/state, instead of hanging", async () => {
    const dir = await tmp();
    await corruptStore(join(dir, "state"), [
      ["popularity-join", 0],
      ["popularity-join", 1],
      ["window", 0],
    ]);
    const r = await runStart({ ...(await env(dir)), PARSE_PROCESS: "0" }, 45_000);
    expect(r.code, r.out).not.toBe(null); // not killed by the timeout: it exited by itself
    expect(r.code).not.toBe(0);
    const lines = fatalLines(r.out);
    expect(lines, r.out).toHaveLength(1);
    expect(lines[0]).toContain(`delete ${join(dir, "state")}`);
    expect(r.out).not.toContain("reco-stream ready");
  });

  it("a corrupt CURRENT: reco start names the path", async () => {
    const dir = await tmp();
    const db = await openStateDb(join(dir, "state"));
    await db.close();
    await writeFile(join(dir, "state", "CURRENT"), "garbage\n");
    const r = await runStart({ ...(await env(dir)), PARSE_PROCESS: "0" }, 45_000);
    expect(r.code).not.toBe(null);
    expect(r.code).not.toBe(0);
    expect(fatalLines(r.out)[0], r.out).toContain(join(dir, "state"));
  });

  it("parse's own store (PARSE_PROCESS=1, DATA_DIR/state-parse) corrupt: exits non-zero naming it", async () => {
    const dir = await tmp();
    await corruptStore(join(dir, "state-parse"), [["parse", 0]]);
    const r = await runStart({ ...(await env(dir)), PARSE_PROCESS: "1" }, 45_000);
    expect(r.code, r.out).not.toBe(null);
    expect(r.code).not.toBe(0);
    const lines = fatalLines(r.out);
    expect(lines.length, r.out).toBeGreaterThanOrEqual(1);
    expect(lines[0]).toContain(`delete ${join(dir, "state-parse")}`);
  });
});
