import { afterAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { startEmbeddedNats, NatsServerMissingError } from "../connectors/nats/embedded-server.js";

describe("embedded nats-server", () => {
  let t: TestNats | undefined;
  afterAll(async () => t?.cleanup());

  it("starts with JetStream enabled on a free port", async () => {
    t = await setupNats();
    const nc = await connect({ servers: t.url });
    const info = await (await nc.jetstreamManager()).getAccountInfo();
    expect(info.limits).toBeDefined();
    await nc.close();
  });

  it("names the install command when the binary is missing, and leaves no store dir", async () => {
    const storeDir = join(tmpdir(), `reco-missing-${process.pid}-${Date.now()}`);
    await expect(
      startEmbeddedNats({ port: 0, storeDir, binary: "no-such-nats-server" }),
    ).rejects.toThrow(NatsServerMissingError);
    await expect(
      startEmbeddedNats({ port: 0, storeDir, binary: "no-such-nats-server" }),
    ).rejects.toThrow(/apt-get install -y nats-server/);
    expect(existsSync(storeDir)).toBe(false);
  });
});
