import { afterAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

/*
 * A port another program holds fails `reco start` with one line that names the port and the
 * setting to change, for every port it listens on (the console's WEB_PORT, when set).
 */

const root = resolve(import.meta.dirname, "..");
let holder: Server | undefined;
let dir: string | undefined;
afterAll(async () => {
  await new Promise((r) => (holder ? holder.close(r) : r(undefined)));
  if (dir) await rm(dir, { recursive: true, force: true });
});

function start(env: Record<string, string>) {
  const base: NodeJS.ProcessEnv = { ...process.env };
  delete base.NATS_URL;
  return new Promise<{ code: number; lines: string[] }>((done) =>
    execFile(
      process.execPath,
      [join(root, "bin", "reco.mjs"), "start"],
      {
        cwd: root,
        env: {
          ...base,
          DATA_DIR: dir!,
          NATS_PORT: "0",
          NATS_MONITOR_PORT: "0",
          GRPC_PORT: "0",
          METRICS_PORT: "0",
          WEB_PORT: "0",
          LOG_LEVEL: "warn",
          ...env,
        },
        timeout: 60_000,
      },
      (error, out, err) =>
        done({
          code: error ? ((error as { code?: number }).code ?? 1) : 0,
          lines: `${out}${err}`.split("\n").filter((l) => l !== "" && !l.startsWith("npm warn")),
        }),
    ),
  );
}

describe("a port that is taken", () => {
  it("fails the start with one line naming the port and the setting", async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-port-taken-"));
    holder = createServer();
    await new Promise<void>((r) => holder!.listen(0, "127.0.0.1", r));
    const port = (holder.address() as { port: number }).port;
    for (const setting of ["METRICS_PORT", "NATS_PORT", "GRPC_PORT", "WEB_PORT"]) {
      const r = await start({ [setting]: String(port) });
      const fatal = r.lines.map((l) => JSON.parse(l) as { level: number; msg: string });
      expect({
        setting,
        code: r.code,
        said: fatal.filter((l) => l.level >= 50).map((l) => l.msg),
      }).toEqual({
        setting,
        code: 1,
        said: [
          `failed to start: ${setting}=${port} is taken: another program listens on 127.0.0.1:${port}; set ${setting} to a free port (0: any free one)`,
        ],
      });
      // Nothing but our own log lines (no grpc-js or nats-server text of its own).
      expect(fatal.every((l) => typeof l.level === "number")).toBe(true);
    }
  }, 240_000);
});
