import { afterEach, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { freePort } from "../connectors/nats/embedded-server.js";
import { until } from "./helpers/harness.js";

/**
 * Bench step 6b (RESULTS.md at 2e6f42d) read "-21,449 events replayed by parse", and again
 * -108,800 and -182,703 in reduced runs: the main process was SIGKILLed, but its parse process
 * ended only when its loop got to the IPC channel's 'disconnect', 1.5-9 s later while it was busy
 * catching up. Meanwhile it went on processing, publishing and snapshotting, and the next start's
 * parse process could not open its LevelDB. It now gets SIGKILL from the kernel when the main
 * process dies (PR_SET_PDEATHSIG via setpriv). Here a stopped parse process stands for a busy one:
 * it reads no 'disconnect' either.
 */

const root = resolve(import.meta.dirname, "..");
const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe("the parse process of a SIGKILLed main process", () => {
  let nats: TestNats | undefined;
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  const pids: number[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
    for (const p of pids.splice(0)) if (!gone(p)) process.kill(p, "SIGKILL");
    await nats?.cleanup();
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it("dies with it, even when it is not reading its IPC channel", async () => {
    nats = await setupNats();
    const dir = await mkdtemp(join(tmpdir(), "reco-parse-pdeath-"));
    dirs.push(dir);
    const child = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
      cwd: root,
      env: {
        ...process.env,
        NATS_URL: nats.url,
        DATA_DIR: dir,
        GRPC_PORT: "0",
        GRPC_HOST: "127.0.0.1",
        METRICS_PORT: String(await freePort()),
        PARTITIONS: "2",
        PARSE_PROCESS: "1",
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((res) => child.once("exit", () => res()));
    const parsePid = () => Number(/"parsePid":(\d+),"msg":"parse process ready"/.exec(out)?.[1]);
    expect(await until(() => parsePid() > 0, 60_000), out).toBe(true);
    const pid = parsePid();
    pids.push(pid);

    process.kill(pid, "SIGSTOP");
    child.kill("SIGKILL");
    await exited;
    expect(await until(() => gone(pid), 3_000)).toBe(true);
  }, 90_000);
});
