import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { NatsConnection } from "nats";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { connectNats, type ConnectNatsOptions } from "../connectors/nats/connection.js";
import { loadConfig, type AppConfig } from "../bin/config.js";
import { needTool } from "./helpers/tools.js";

/**
 * NATS over TLS, server verified by NATS_TLS_CA, client certificate and key by
 * NATS_TLS_CERT / NATS_TLS_KEY, against a real nats-server with TLS and mutual TLS.
 */

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all short-lived. */
async function makePki(dir: string) {
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=reco-test-ca",
  );
  const leaf = async (name: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext);
    ssl("req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`);
    ssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "2",
      "-extfile",
      `${name}.ext`,
    );
  };
  await leaf("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  await leaf("client", "extendedKeyUsage=clientAuth\n");
  // A second CA the server does not chain to.
  ssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "other.key",
    "-out",
    "other.pem",
    "-days",
    "2",
    "-subj",
    "/CN=other-ca",
  );
  const p = (f: string) => join(dir, f);
  return {
    ca: p("ca.pem"),
    otherCa: p("other.pem"),
    serverCert: p("server.pem"),
    serverKey: p("server.key"),
    clientCert: p("client.pem"),
    clientKey: p("client.key"),
  };
}

/** The connection options bin/app.ts builds from the configuration (see the report's hook). */
function natsOptionsOf(cfg: AppConfig, servers: string): ConnectNatsOptions {
  return {
    servers,
    name: "tls-test",
    tls: { caFile: cfg.natsTlsCa, certFile: cfg.natsTlsCert, keyFile: cfg.natsTlsKey },
  };
}

async function roundTrip(nc: NatsConnection): Promise<string> {
  const sub = nc.subscribe("tls.echo", { max: 1 });
  nc.publish("tls.echo", "hello");
  for await (const m of sub) return m.string();
  return "";
}

describe("NATS over TLS", () => {
  let dir: string;
  let pki: Awaited<ReturnType<typeof makePki>>;
  let tlsServer: EmbeddedNats;
  let mtlsServer: EmbeddedNats;
  const opened: NatsConnection[] = [];
  const connect = async (o: ConnectNatsOptions) => {
    const nc = await connectNats({ ...o, name: "tls-test" });
    opened.push(nc);
    return nc;
  };

  beforeAll(async () => {
    needTool("openssl");
    dir = await mkdtemp(join(tmpdir(), "reco-tls-"));
    pki = await makePki(dir);
    const tlsArgs = ["--tls", "--tlscert", pki.serverCert, "--tlskey", pki.serverKey];
    tlsServer = await startEmbeddedNats({ port: 0, storeDir: join(dir, "s1"), extraArgs: tlsArgs });
    mtlsServer = await startEmbeddedNats({
      port: 0,
      storeDir: join(dir, "s2"),
      extraArgs: [...tlsArgs, "--tlsverify", "--tlscacert", pki.ca],
    });
  });

  afterAll(async () => {
    for (const nc of opened) await nc.close().catch(() => undefined);
    await tlsServer?.stop();
    await mtlsServer?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("connects with NATS_TLS_CA and verifies the server", async () => {
    const cfg = loadConfig({ NATS_URL: tlsServer.url, NATS_TLS_CA: pki.ca });
    const nc = await connect(natsOptionsOf(cfg, tlsServer.url));
    expect(await roundTrip(nc)).toBe("hello");
  });

  it("refuses a server whose certificate the CA did not sign", async () => {
    const cfg = loadConfig({ NATS_URL: tlsServer.url, NATS_TLS_CA: pki.otherCa });
    await expect(connectNats({ ...natsOptionsOf(cfg, tlsServer.url) })).rejects.toThrow();
  });

  it("presents the client certificate from NATS_TLS_CERT / NATS_TLS_KEY for mutual TLS", async () => {
    const cfg = loadConfig({
      NATS_URL: mtlsServer.url,
      NATS_TLS_CA: pki.ca,
      NATS_TLS_CERT: pki.clientCert,
      NATS_TLS_KEY: pki.clientKey,
    });
    const nc = await connect(natsOptionsOf(cfg, mtlsServer.url));
    expect(await roundTrip(nc)).toBe("hello");
  });

  it("is refused by a mutual-TLS server without a client certificate", async () => {
    const cfg = loadConfig({ NATS_URL: mtlsServer.url, NATS_TLS_CA: pki.ca });
    // The server drops the handshake; the client notices when its connect timeout passes.
    await expect(
      connectNats({ ...natsOptionsOf(cfg, mtlsServer.url), timeoutMs: 1500 }),
    ).rejects.toThrow();
  });

  it("never falls back to plaintext: TLS options against a server without TLS fail", async () => {
    const plain = await startEmbeddedNats({ port: 0, storeDir: join(dir, "s3") });
    try {
      await expect(
        connectNats({ servers: plain.url, name: "tls-test", tls: { caFile: pki.ca } }),
      ).rejects.toThrow();
      // A tls:// URL alone also requires TLS.
      await expect(
        connectNats({
          servers: plain.url.replace("nats://", "tls://"),
          name: "tls-test",
        }),
      ).rejects.toThrow();
    } finally {
      await plain.stop();
    }
  });
});
