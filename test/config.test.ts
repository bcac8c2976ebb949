import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { existsSync } from "node:fs";
import fc from "fast-check";
import { ConfigError, SETTINGS, loadConfig, redactConfig } from "../bin/config.js";

/**
 * Every setting is validated at start, and an error names the setting,
 * the value and the expected form; secrets never appear in what is logged.
 */

/** The ConfigError message loadConfig throws for these settings. */
function errorOf(env: Record<string, string>, flags: Record<string, string> = {}): string {
  try {
    loadConfig(env, flags);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).message;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

type Numeric = { env: string; kind: "port" | "int" | "ms" | "number"; min?: number; max?: number };
const numeric = (Object.values(SETTINGS) as { env: string; kind: string }[]).filter(
  (s): s is Numeric => ["port", "int", "ms", "number"].includes(s.kind),
);

let dir: string;
let pem: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "reco-config-"));
  pem = join(dir, "x.pem");
  await writeFile(pem, "-----BEGIN CERTIFICATE-----\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("configuration", () => {
  it("has a valid default for every setting", () => {
    const cfg = loadConfig({});
    expect(cfg.natsUrl).toBeUndefined();
    expect(cfg.natsPort).toBe(4222);
    expect(cfg.grpcPort).toBe(50051);
    expect(cfg.grpcMaxMessageBytes).toBe(65536);
    expect(cfg.pipeline).toMatchObject({
      partitions: 8,
      dedupeHorizonMs: 93_600_000,
      dedupeMaxIds: 2_000_000,
      maxEventBytes: 65536,
      duplicateWindowMs: 120_000,
      snapshotIntervalMs: 2000,
    });
  });

  it("binds every listener to loopback unless a host setting says otherwise", () => {
    const cfg = loadConfig({});
    expect(cfg.grpcHost).toBe("127.0.0.1");
    expect(cfg.metricsHost).toBe("127.0.0.1");
    const open = loadConfig({ GRPC_HOST: "0.0.0.0", METRICS_HOST: "0.0.0.0" });
    expect([open.grpcHost, open.metricsHost]).toEqual(["0.0.0.0", "0.0.0.0"]);
  });

  it("lets a flag win over the environment", () => {
    expect(loadConfig({ GRPC_PORT: "1" }, { GRPC_PORT: "2" }).grpcPort).toBe(2);
  });

  describe.each(numeric)("$env", (s) => {
    const expected =
      s.kind === "port"
        ? "a port number from 0 to 65535"
        : s.kind === "ms"
          ? "a whole number of milliseconds"
          : s.kind === "number"
            ? "a number"
            : "a whole number";

    it("names the setting, the value and the expected form when it is not a number", () => {
      expect(errorOf({ [s.env]: "abc" })).toBe(`${s.env}="abc" is not valid: expected ${expected}`);
      expect(errorOf({ [s.env]: "1e3" })).toContain(`${s.env}="1e3" is not valid`);
    });

    if (s.kind !== "number")
      it("refuses a fraction", () => {
        expect(errorOf({ [s.env]: "2.5" })).toBe(
          `${s.env}="2.5" is not valid: expected ${expected}`,
        );
      });

    const min = s.kind === "port" ? 0 : s.min;
    const max = s.kind === "port" ? 65535 : s.max;
    if (min !== undefined)
      it(`refuses a value below ${min}`, () => {
        expect(errorOf({ [s.env]: String(min - 1) })).toMatch(
          new RegExp(`^${s.env}=${min - 1} is out of range: expected .* from ${min} to `),
        );
      });
    if (max !== undefined)
      it(`refuses a value above ${max}`, () => {
        expect(errorOf({ [s.env]: String(max + 1) })).toMatch(
          new RegExp(`^${s.env}=${max + 1} is out of range: expected .* to ${max}$`),
        );
      });
  });

  // "expected a port number 0-65535 from 0 to 65535" said the range twice.
  it("states a port's range once", () => {
    expect(errorOf({ GRPC_PORT: "70000" })).toBe(
      "GRPC_PORT=70000 is out of range: expected a port number from 0 to 65535",
    );
  });

  it("takes trending weights per event type, and the older two settings when it is unset", () => {
    // An e-commerce log (REES46 has no clicks) trends by carts and purchases too.
    expect(loadConfig({}).pipeline.trendingWeights).toEqual({
      view: 1,
      click: 2,
      cart: 3,
      purchase: 5,
    });
    expect(
      loadConfig({ TRENDING_VIEW_WEIGHT: "0.5", TRENDING_CLICK_WEIGHT: "3" }).pipeline
        .trendingWeights,
    ).toEqual({ view: 0.5, click: 3, cart: 3, purchase: 5 });
    expect(
      loadConfig({ TRENDING_WEIGHTS: "view=1, cart=3,purchase=5", TRENDING_VIEW_WEIGHT: "9" })
        .pipeline.trendingWeights,
    ).toEqual({ view: 1, cart: 3, purchase: 5 });
    expect(errorOf({ TRENDING_WEIGHTS: "view=1,like=2" })).toMatch(
      /^TRENDING_WEIGHTS="view=1,like=2" is not valid: unknown event type "like"; expected type=weight pairs/,
    );
    expect(errorOf({ TRENDING_WEIGHTS: "view=-1" })).toContain('"view=-1" is not type=weight');
    expect(errorOf({ TRENDING_WEIGHTS: "view=1,view=2" })).toContain("view is given twice");
    // The movies preset's events are ratings: counted (by value) unless weights are set.
    expect(loadConfig({ PRESET: "movies" }).pipeline.trendingWeights).toEqual({ rating: 1 });
    expect(
      loadConfig({ PRESET: "movies", TRENDING_WEIGHTS: "rating=2" }).pipeline.trendingWeights,
    ).toEqual({ rating: 2 });
    expect(
      loadConfig({ PRESET: "movies", TRENDING_VIEW_WEIGHT: "1" }).pipeline.trendingWeights,
    ).toEqual({ view: 1, click: 2, cart: 3, purchase: 5 });
  });

  it("has a monitoring port for the private nats-server, 0 for none", () => {
    expect(loadConfig({}).natsMonitorPort).toBe(8222);
    expect(loadConfig({ NATS_MONITOR_PORT: "0" }).natsMonitorPort).toBe(0);
  });

  it("lists the allowed values of an enum", () => {
    expect(errorOf({ PRESET: "books" })).toBe(
      'PRESET="books" is not valid: expected one of ecommerce, movies',
    );
    expect(errorOf({ LOG_LEVEL: "loud" })).toBe(
      'LOG_LEVEL="loud" is not valid: expected one of fatal, error, warn, info, debug, trace, silent',
    );
  });

  it("checks the form of NATS_URL, without echoing credentials written into it", () => {
    expect(errorOf({ NATS_URL: "http://a:4222" })).toBe(
      'NATS_URL="http://a:4222" is not valid: expected nats://host:port[,nats://host:port...]',
    );
    const msg = errorOf({ NATS_URL: "nats://bob:s3cret@a:4222,nats://b 4222" });
    expect(msg).toContain("NATS_URL=");
    expect(msg).not.toContain("s3cret");
    expect(loadConfig({ NATS_URL: "nats://a:4222, tls://b:4443,c:4222" }).natsUrl).toBe(
      "nats://a:4222, tls://b:4443,c:4222",
    );
  });

  it.each(["NATS_CREDS", "NATS_TLS_CA", "GRPC_TLS_CERT"] as const)(
    "refuses %s naming a file that does not exist or is a directory",
    (env) => {
      const others: Record<string, string> = env === "GRPC_TLS_CERT" ? { GRPC_TLS_KEY: pem } : {};
      const missing = join(dir, "missing.pem");
      expect(errorOf({ [env]: missing, ...others })).toBe(
        `${env}=${JSON.stringify(missing)} is not valid: expected the path of a readable file (no such file)`,
      );
      expect(errorOf({ [env]: dir, ...others })).toBe(
        `${env}=${JSON.stringify(dir)} is not valid: expected the path of a readable file (not a regular file)`,
      );
    },
  );

  it("wants certificate and key together, for gRPC and for NATS", () => {
    expect(errorOf({ GRPC_TLS_CERT: pem })).toBe(
      "GRPC_TLS_CERT and GRPC_TLS_KEY must be set together (paths to PEM files); only GRPC_TLS_CERT is set",
    );
    expect(errorOf({ NATS_TLS_KEY: pem })).toBe(
      "NATS_TLS_CERT and NATS_TLS_KEY must be set together (paths to PEM files); only NATS_TLS_KEY is set",
    );
    const cfg = loadConfig({ NATS_TLS_CA: pem, NATS_TLS_CERT: pem, NATS_TLS_KEY: pem });
    expect(cfg).toMatchObject({ natsTlsCa: pem, natsTlsCert: pem, natsTlsKey: pem });
    expect(loadConfig({ NATS_TLS_CA: pem }).natsTlsCert).toBeUndefined();
  });

  it("wants one NATS authentication, user and password together", () => {
    expect(errorOf({ NATS_USER: "bob" })).toBe(
      "NATS_USER and NATS_PASS must be set together (NATS user and password); only NATS_USER is set",
    );
    expect(errorOf({ NATS_USER: "bob", NATS_PASS: "pw", NATS_TOKEN: "t" })).toBe(
      "NATS_USER and NATS_TOKEN are both set: expected one NATS authentication (NATS_USER + NATS_PASS, NATS_TOKEN or NATS_CREDS)",
    );
    expect(errorOf({ NATS_TOKEN: "t", NATS_CREDS: pem })).toMatch(/^NATS_TOKEN and NATS_CREDS/);
  });

  it("wants DUPLICATE_WINDOW_MS at least 3 × SNAPSHOT_INTERVAL", () => {
    expect(errorOf({ SNAPSHOT_INTERVAL: "2000", DUPLICATE_WINDOW_MS: "5999" })).toBe(
      "DUPLICATE_WINDOW_MS=5999 is too short for SNAPSHOT_INTERVAL=2000: expected at least 3 × the snapshot interval, " +
        "so outputs replayed after a crash are recognised as duplicates",
    );
    expect(
      loadConfig({ SNAPSHOT_INTERVAL: "2000", DUPLICATE_WINDOW_MS: "6000" }).pipeline
        .duplicateWindowMs,
    ).toBe(6000);
    // The default window (2 min) and the largest interval (1 min) conflict too.
    expect(errorOf({ SNAPSHOT_INTERVAL: "60000" })).toMatch(
      /^DUPLICATE_WINDOW_MS=120000 is too short for SNAPSHOT_INTERVAL=60000/,
    );
  });

  it("wants DEDUPE_HORIZON_MS at least the largest allowed disorder", () => {
    expect(errorOf({ DEDUPE_HORIZON_MS: "3600000" })).toMatch(
      /^DEDUPE_HORIZON_MS=3600000 is shorter than the allowed disorder of 93600000 ms: expected at least/,
    );
    expect(
      loadConfig({
        DEDUPE_HORIZON_MS: "7200000",
        TRENDING_24H_OUT_OF_ORDERNESS_MS: "7200000",
      }).pipeline.dedupeHorizonMs,
    ).toBe(7_200_000);
  });

  it("reports the first bad setting and touches nothing (loadConfig is pure but for file checks)", () => {
    const missing = join(dir, "new-data-dir");
    expect(errorOf({ DATA_DIR: missing, PARTITIONS: "0" })).toMatch(
      /^PARTITIONS=0 is out of range/,
    );
    expect(existsSync(missing)).toBe(false);
  });
});

describe("redactConfig", () => {
  it("masks the NATS password, token and URL credentials, and keeps the rest", () => {
    const cfg = loadConfig({
      NATS_URL: "nats://bob:pa@ss@a:4222,tls://tok3n@b:4443",
      NATS_USER: "bob",
      NATS_PASS: "hunter2",
    });
    const shown = redactConfig(cfg);
    const text = JSON.stringify(shown);
    expect(text).not.toContain("hunter2");
    expect(text).not.toContain("pa@ss");
    expect(text).not.toContain("tok3n");
    expect(shown).toMatchObject({
      natsUser: "bob",
      natsPass: "***",
      natsUrl: "nats://***@a:4222,tls://***@b:4443",
    });
    expect(JSON.stringify(redactConfig(loadConfig({ NATS_TOKEN: "s3cr3t-t0k3n" })))).not.toContain(
      "s3cr3t",
    );
  });

  it("never shows a secret, whatever its characters (property)", () => {
    // A marker prefix, so a secret cannot happen to equal some other text of the config.
    const secret = fc
      .string({ minLength: 1, maxLength: 30 })
      .filter((s) => !/[\s,/]/.test(s))
      .map((s) => `Zq~${s}`);
    fc.assert(
      fc.property(secret, secret, (pass, token) => {
        const viaPass = redactConfig(
          loadConfig({
            NATS_USER: "u",
            NATS_PASS: pass,
            NATS_URL: `nats://u:${pass}@h:4222`,
          }),
        );
        const viaToken = redactConfig(loadConfig({ NATS_TOKEN: token }));
        expect(JSON.stringify(viaPass)).not.toContain(JSON.stringify(pass).slice(1, -1));
        expect(JSON.stringify(viaToken)).not.toContain(JSON.stringify(token).slice(1, -1));
      }),
      { seed: 5, numRuns: 200 },
    );
  });
});
