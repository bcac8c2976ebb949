import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { connectNats, splitServerCredentials } from "../connectors/nats/connection.js";
import { connectWithStatus } from "../bin/nats-connect.js";
import { loadConfig } from "../bin/config.js";

/**
 * `NATS_URL=nats://user:pass@host` passed validation, but nats.js ignores a
 * URL's user-info, so the server answered "Authorization Violation". Against a real nats-server
 * that requires a user and password (or a token).
 */
describe("credentials written into NATS_URL", () => {
  let dir: string;
  let withUser: EmbeddedNats;
  let withToken: EmbeddedNats;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-url-auth-"));
    withUser = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "a"),
      extraArgs: ["--user", "reco", "--pass", "p@ss:w/rd"],
    });
    withToken = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "b"),
      extraArgs: ["--auth", "t0ken"],
    });
  });
  afterAll(async () => {
    await withUser?.stop();
    await withToken?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const userUrl = () => `nats://reco:${encodeURIComponent("p@ss:w/rd")}@127.0.0.1:${withUser.port}`;

  it("are taken out of the URL and used as user and password", async () => {
    await expect(
      connectNats({ servers: `nats://127.0.0.1:${withUser.port}`, name: "t", timeoutMs: 2000 }),
    ).rejects.toThrow(/Authorization Violation/i);
    const nc = await connectNats({ servers: userUrl(), name: "t", timeoutMs: 2000 });
    await nc.flush();
    await nc.close();
  });

  it("a URL with a token only authenticates with the token", async () => {
    const nc = await connectNats({
      servers: `nats://t0ken@127.0.0.1:${withToken.port}`,
      name: "t",
      timeoutMs: 2000,
    });
    await nc.flush();
    await nc.close();
  });

  it("work through NATS_URL as the app connects, and are never logged", async () => {
    const cfg = loadConfig({ NATS_URL: userUrl() });
    const lines: string[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => void lines.push(l) });
    const nc = await connectWithStatus(cfg, cfg.natsUrl!, "reco-test", log);
    await nc.flush();
    await nc.close();
    expect(lines.join("")).not.toContain("p%40ss");
  });

  it("splitServerCredentials strips user-info from every URL and decodes it", () => {
    expect(splitServerCredentials("nats://u:p%40x@a:4222, nats://u:p%40x@b:4222,c:4222")).toEqual({
      servers: ["nats://a:4222", "nats://b:4222", "c:4222"],
      auth: { user: "u", pass: "p@x" },
    });
    expect(splitServerCredentials("nats://a:4222")).toEqual({ servers: ["nats://a:4222"] });
  });
});
