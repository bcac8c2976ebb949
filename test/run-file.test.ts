import { afterAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * The CLI finds its engine: `reco start` writes DATA_DIR/run.json (pid, every port, version, start
 * time) once ready and removes it when it stops; `reco url`, `reco recommend` and the other
 * commands read it, so nothing talks to whatever answers on the default ports.
 */

const root = resolve(import.meta.dirname, "..");
let nats: TestNats | undefined;
let dir: string | undefined;
let app: ChildProcess | undefined;
afterAll(async () => {
  app?.kill("SIGKILL");
  await nats?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function reco(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; out: string; err: string }>((done) =>
    execFile(
      process.execPath,
      [join(root, "bin", "reco.mjs"), ...args],
      { cwd: root, env: { ...process.env, GRPC_ADDR: "", GRPC_PORT: "", ...env }, timeout: 60_000 },
      (error, out, err) =>
        done({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          out,
          err: err
            .split("\n")
            .filter((l) => l !== "" && !l.startsWith("npm warn"))
            .join("\n"),
        }),
    ),
  );
}

async function until(check: () => boolean, ms: number) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100)))
    if (check()) return true;
  return false;
}

describe("DATA_DIR/run.json", () => {
  it("tells every command where the running engine is, and goes when it stops", async () => {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-run-file-"));
    const data = join(dir, "data");
    const file = join(data, "run.json");
    const env = { DATA_DIR: data };
    app = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
      cwd: root,
      env: {
        ...process.env,
        NATS_URL: nats.url,
        DATA_DIR: data,
        // Every port free: none of them is a default one the CLI could guess.
        GRPC_PORT: "0",
        WEB_PORT: "0",
        METRICS_PORT: "0",
        LOG_LEVEL: "warn",
      },
      stdio: "ignore",
    });
    expect(await until(() => existsSync(file), 90_000)).toBe(true);
    const info = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    // The engine's own process (the launcher may run it as its child with node's flags).
    expect(info).toMatchObject({ dataDir: data });
    expect(() => process.kill(info.pid as number, 0)).not.toThrow();
    expect(info.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(info.grpc).not.toBe("127.0.0.1:50051");
    expect(info.nats).toBe(nats.url);

    const web = await reco(["url", "web"], env);
    expect(web.code).toBe(0);
    expect(web.out.trim()).toBe(info.web);
    const trending = await fetch(`${web.out.trim()}v1/trending?window=1h`);
    expect(trending.status).toBe(200);
    const metrics = await reco(["url", "metrics"], env);
    expect((await fetch(`${metrics.out.trim()}metrics`)).status).toBe(200);

    // The query commands go to the engine's gRPC port: an answer, not "no engine".
    const asked = await reco(["recommend", "u1", "-n", "3"], env);
    expect(asked.err).not.toMatch(/no engine/);
    expect(`${asked.out}${asked.err}`).toMatch(/recommendations for u1|UNAVAILABLE: /);

    app.kill("SIGTERM");
    expect(await until(() => !existsSync(file), 30_000)).toBe(true);
    const gone = await reco(["url", "web"], env);
    expect(gone.code).toBe(1);
    expect(gone.err).toBe(
      `reco url: no engine runs with DATA_DIR=${data} (no ${join(data, "run.json")}): start it with npm start, or set DATA_DIR to the engine's`,
    );
  }, 180_000);
});

describe("writeRunFile", () => {
  it("creates a DATA_DIR that does not exist yet (a gateway keeps nothing else there)", async () => {
    const { writeRunFile } = await import("../bin/run-file.js");
    const base = await mkdtemp(join(tmpdir(), "reco-run-file-gw-"));
    try {
      const data = join(base, "gw", "data");
      const remove = writeRunFile({
        pid: process.pid,
        version: "0.0.0",
        startedAt: new Date().toISOString(),
        dataDir: data,
        grpc: "127.0.0.1:1",
        web: "",
        metrics: "http://127.0.0.1:2/",
        nats: "nats://127.0.0.1:3",
      });
      const info = JSON.parse(await readFile(join(data, "run.json"), "utf8")) as { pid: number };
      expect(info.pid).toBe(process.pid);
      remove();
      expect(existsSync(join(data, "run.json"))).toBe(false);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
