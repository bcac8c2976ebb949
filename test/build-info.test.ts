import { afterAll, describe, expect, it } from "vitest";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { freePort } from "../connectors/nats/embedded-server.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * reco_build_info names the package's version and the git commit of the checkout, also when the
 * app runs from its build in dist/ (as `npm start` runs it), where it said "unknown".
 */

const root = resolve(import.meta.dirname, "..");
let nats: TestNats | undefined;
let app: ChildProcess | undefined;
let dir: string | undefined;

afterAll(async () => {
  app?.kill("SIGKILL");
  await nats?.cleanup();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("reco_build_info", () => {
  it("names the package version and the checkout's commit when run from the build", async () => {
    nats = await setupNats();
    dir = await mkdtemp(join(tmpdir(), "reco-build-info-"));
    const metricsPort = await freePort();
    // The build in dist/, as npm start runs it (a stale build would fall back to the sources).
    execFileSync(process.execPath, [join(root, "bin", "build.mjs")], { cwd: root });
    app = spawn(process.execPath, [join(root, "bin", "reco.mjs"), "start"], {
      cwd: root,
      env: {
        ...process.env,
        NATS_URL: nats.url,
        DATA_DIR: join(dir, "data"),
        GRPC_PORT: "0",
        WEB_PORT: "0",
        METRICS_PORT: String(metricsPort),
        LOG_LEVEL: "warn",
        RECO_COMMIT: "",
      },
      stdio: "ignore",
    });
    let text = "";
    for (
      const end = Date.now() + 60_000;
      Date.now() < end;
      await new Promise((r) => setTimeout(r, 200))
    ) {
      text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
        .then((r) => r.text())
        .catch(() => "");
      if (text.includes("reco_build_info")) break;
    }
    const pkg = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as {
      version: string;
    };
    const head = execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
    const line = /^reco_build_info\{version="([^"]*)",commit="([^"]*)",node="([^"]*)"\} 1$/m.exec(
      text,
    );
    expect(line, text.slice(0, 300)).not.toBeNull();
    expect(line![1]).toBe(pkg.version);
    expect(line![2]).toBe(head.slice(0, 12));
    expect(line![3]).toBe(process.versions.node);
  }, 120_000);
});
