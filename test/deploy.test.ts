import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join, posix, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { connect, type NatsConnection } from "nats";
import { Registry, collectDefaultMetrics } from "prom-client";
import { parse, parseAllDocuments } from "yaml";
import {
  freePort,
  startEmbeddedNats,
  type EmbeddedNats,
} from "../connectors/nats/embedded-server.js";
import { SETTINGS } from "../bin/config.js";

/**
 * Deploy/ (Dockerfile, docker-compose.yml, Kubernetes manifests, Prometheus
 * rules, Grafana). Docker and Kubernetes do not run here, so the files are parsed and checked
 * against the code: settings, metric names, ports, health path. Where a checker is installed
 * (promtool, docker-compose, kubectl, nats-server) it runs too.
 */

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "..");
const deployDir = join(root, "deploy");
const read = (path: string) => readFileSync(join(root, path), "utf8");
const yamlOf = <T>(path: string): T => parse(read(path), { merge: true }) as T;
const onPath = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;
/** Debian's package of each tool these tests run (`bash .ci/run` installs them). */
const PACKAGES: Record<string, string> = {
  "docker-compose": "docker-compose",
  "nats-server": "nats-server",
  promtool: "prometheus",
  kubectl: "kubectl",
};
/** Fails, naming the tool and its package, when a tool the test runs is not installed. */
const needs = (bin: string) => {
  if (!onPath(bin))
    throw new Error(
      `${bin} is not installed: this test runs it (apt-get install ${PACKAGES[bin] ?? bin}; bash .ci/run installs it)`,
    );
};

/** Every env name the settings table declares (`env: "NAME"` in SETTINGS, bin/config-settings.ts). */
const SETTING_ENVS = [
  ...read("bin/config-settings.ts").matchAll(/\benv:\s*"([A-Z][A-Z0-9_]*)"/g),
].map((m) => m[1]!);
/**
 * The split roles' settings: the keys of ROLE_SETTINGS in bin/role-config.ts, or, while
 * that file does not exist, WORKER_ID.
 */
const ROLE_ENVS = existsSync(join(root, "bin/role-config.ts"))
  ? [
      ...(/ROLE_SETTINGS\s*=\s*\{([^}]*)\}/.exec(read("bin/role-config.ts"))?.[1] ?? "").matchAll(
        /^\s*([A-Z][A-Z0-9_]*)\s*:/gm,
      ),
    ].map((m) => m[1]!)
  : ["WORKER_ID"];
const KNOWN_ENVS = new Set([...SETTING_ENVS, ...ROLE_ENVS]);
const unknownEnvs = (names: Iterable<string>) => [...names].filter((n) => !KNOWN_ENVS.has(n));

function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && keep(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

// ---------------------------------------------------------------------------------------------
// Metric names

/** Metric names the code registers: `name: "reco_..."` / `name: "grpc_..."` in the sources. */
function definedMetrics(): Set<string> {
  const names = new Set<string>();
  for (const dir of ["actors", "bin", "connectors", "state", "runtime"]) {
    for (const file of filesUnder(join(root, dir), (n) => n.endsWith(".ts"))) {
      for (const m of read(file).matchAll(/\bname:\s*"((?:reco|grpc)_[a-z0-9_]+)"/g))
        names.add(m[1]!);
    }
  }
  // prom-client's default process and Node.js metrics (collectDefaultMetrics in metrics.ts).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const m of registry.getMetricsAsArray()) names.add(m.name);
  names.add("up"); // written by Prometheus for every target
  return names;
}

const PROMQL_WORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "offset",
  "bool",
  "inf",
  "nan",
]);

/** Metric names a PromQL expression reads (not functions, keywords, labels or strings). */
function metricsIn(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, " ") // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " "); // label lists
  const names: string[] = [];
  for (const m of bare.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m;
    if (call || PROMQL_WORDS.has(name!.toLowerCase())) continue;
    names.push(name!);
  }
  return names;
}

/** The defined metric a referenced series belongs to (histogram series lose their suffix). */
function baseMetric(name: string, defined: Set<string>): string | undefined {
  if (defined.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && defined.has(base) ? base : undefined;
}

describe("metricsIn (the PromQL reader these checks use)", () => {
  it("finds metric names and skips functions, labels, keywords and strings", () => {
    expect(
      metricsIn(
        'histogram_quantile(0.99, sum by (le, stage) (rate(reco_x_bucket{method="a_b"}[$__rate_interval]))) > 1 and on (stage) max(up) == 0 or time() - reco_y / 1000',
      ),
    ).toEqual(["reco_x_bucket", "up", "reco_y"]);
  });
});

describe("the settings these checks accept", () => {
  it("are the env names of SETTINGS, read from bin/config-settings.ts, and the role settings", () => {
    expect([...SETTING_ENVS].sort()).toEqual(
      Object.values(SETTINGS)
        .map((s) => s.env)
        .sort(),
    );
    for (const name of ["NATS_URL", "DATA_DIR", "GRPC_PORT", "METRICS_PORT", "PARTITIONS"])
      expect(KNOWN_ENVS).toContain(name);
    expect(KNOWN_ENVS).toContain("WORKER_ID");
  });
});

// ---------------------------------------------------------------------------------------------
// YAML

describe("deploy/: every YAML file", () => {
  const files = filesUnder(deployDir, (n) => /\.ya?ml$/.test(n));

  it("there are YAML files to check", () => {
    expect(files.length).toBeGreaterThanOrEqual(10);
  });

  it.each(files)("%s parses without errors or warnings", (file) => {
    const docs = parseAllDocuments(read(file), { merge: true });
    expect(Array.isArray(docs), `${file} holds documents`).toBe(true);
    for (const doc of Array.isArray(docs) ? docs : []) {
      expect(doc.errors.map(String)).toEqual([]);
      expect(doc.warnings.map(String)).toEqual([]);
      expect(doc.toJS(), `${file} has content`).toBeTruthy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: string[];
}
interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

const compose = yamlOf<Compose>("deploy/docker-compose.yml");
const services = Object.entries(compose.services);
const natsServices = services.filter(([, s]) => s.image?.startsWith("nats:"));
const role = (r: string) => services.filter(([, s]) => s.command?.[0] === r);
const workers = role("worker");
const gateways = role("gateway");
const recoServices = [...workers, ...gateways];

/** `--key=value` flags of a nats-server command line (a bare `--key` is "true"). */
function flagsOf(command: string[] = []): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of command) {
    const m = /^--?([\w-]+)(?:=(.*))?$/.exec(arg);
    expect(m, `nats-server argument ${arg} is written --key=value`).not.toBeNull();
    flags.set(m![1]!, m![2] ?? "true");
  }
  return flags;
}

/** `source:target[:mode]` volume entries of a service, as { source, target }. */
function mountsOf(s: ComposeService): { source: string; target: string }[] {
  return (s.volumes ?? []).map((v) => {
    const [source = "", target = ""] = v.split(":");
    return { source, target };
  });
}

describe("deploy/docker-compose.yml", () => {
  it("runs three nats:2.9 nodes with JetStream, each on its own volume", () => {
    expect(natsServices.map(([n]) => n).sort()).toEqual(["nats-1", "nats-2", "nats-3"]);
    const volumes = new Set<string>();
    for (const [name, s] of natsServices) {
      expect(s.image).toMatch(/^nats:2\.9(\b|$)/);
      const flags = flagsOf(s.command);
      expect(flags.get("jetstream"), `${name} enables JetStream`).toBe("true");
      expect(flags.get("name"), `${name} has its own server name`).toBe(name);
      const store = flags.get("store_dir");
      expect(store, `${name} sets a store directory`).toBeTruthy();
      const mount = mountsOf(s).find((m) => m.target === store);
      expect(mount, `${name} keeps ${store} on a volume`).toBeDefined();
      expect(compose.volumes, `volume ${mount!.source} is declared`).toHaveProperty(mount!.source);
      volumes.add(mount!.source);
    }
    expect(volumes.size).toBe(3);
  });

  it("clusters the three nodes: one cluster name, each with routes to the other two", () => {
    const names = natsServices.map(([n]) => n);
    const clusterNames = new Set<string | undefined>();
    for (const [name, s] of natsServices) {
      const flags = flagsOf(s.command);
      clusterNames.add(flags.get("cluster_name"));
      const listen = new URL(flags.get("cluster") ?? "");
      const routes = (flags.get("routes") ?? "").split(",").map((r) => new URL(r.trim()));
      expect(routes.map((r) => r.hostname).sort()).toEqual(names.filter((n) => n !== name));
      for (const r of routes) {
        const peer = flagsOf(compose.services[r.hostname]!.command);
        expect(r.port, `route ${r} reaches ${r.hostname}'s cluster port`).toBe(
          new URL(peer.get("cluster")!).port,
        );
      }
      expect(listen.port).toBe("6222");
    }
    expect(clusterNames.size).toBe(1);
    expect([...clusterNames][0]).toBeTruthy();
  });

  it("runs two workers with distinct WORKER_ID, REPLICAS=3 and their own DATA_DIR volume", () => {
    expect(workers).toHaveLength(2);
    const ids = workers.map(([, s]) => s.environment?.WORKER_ID);
    expect(new Set(ids).size).toBe(2);
    expect(ids.every(Boolean)).toBe(true);
    const dataVolumes = new Set<string>();
    for (const [name, s] of workers) {
      expect(s.environment?.REPLICAS, `${name} REPLICAS`).toBe("3");
      const dataDir = s.environment?.DATA_DIR;
      expect(dataDir, `${name} sets DATA_DIR`).toBeTruthy();
      const mount = mountsOf(s).find((m) => m.target === dataDir);
      expect(mount, `${name} keeps DATA_DIR on a volume`).toBeDefined();
      expect(compose.volumes).toHaveProperty(mount!.source);
      dataVolumes.add(mount!.source);
    }
    expect(dataVolumes.size).toBe(2);
  });

  it("gives every worker and gateway a NATS_URL listing all three nodes and the same PARTITIONS", () => {
    const clientUrls = natsServices.map(
      ([name, s]) => `nats://${name}:${flagsOf(s.command).get("port") ?? "4222"}`,
    );
    expect(recoServices.length).toBeGreaterThanOrEqual(3);
    for (const [name, s] of recoServices) {
      const urls = (s.environment?.NATS_URL ?? "").split(",").map((u) => u.trim());
      expect(urls.sort(), `${name} NATS_URL`).toEqual([...clientUrls].sort());
    }
    const partitions = new Set(recoServices.map(([, s]) => s.environment?.PARTITIONS));
    expect(partitions.size, "one PARTITIONS value for all").toBe(1);
  });

  it("runs a gateway that publishes gRPC port 50051", () => {
    expect(gateways).toHaveLength(1);
    const [, gw] = gateways[0]!;
    const grpcPort = gw.environment?.GRPC_PORT ?? "50051";
    expect(grpcPort).toBe("50051");
    expect(gw.ports ?? []).toContain(`50051:${grpcPort}`);
  });

  it("builds the reco services from deploy/Dockerfile with the repo as context", () => {
    const images = new Set(recoServices.map(([, s]) => s.image));
    expect(images.size).toBe(1);
    for (const [name, s] of recoServices) {
      expect(s.build, `${name} has a build section`).toBeDefined();
      expect(resolve(deployDir, s.build!.context)).toBe(root);
      expect(existsSync(join(root, s.build!.dockerfile))).toBe(true);
      expect(s.depends_on).toEqual(expect.arrayContaining(natsServices.map(([n]) => n)));
    }
  });

  it("sets only settings that bin/config.ts knows on the reco services", () => {
    for (const [name, s] of recoServices)
      expect(unknownEnvs(Object.keys(s.environment ?? {})), name).toEqual([]);
  });

  it("runs Prometheus with prometheus.yml and alerts.yml, scraping every worker and the gateway", () => {
    const prom = compose.services.prometheus;
    expect(prom?.image).toMatch(/^prom\/prometheus:/);
    const mounts = mountsOf(prom!);
    const configMount = mounts.find((m) => m.source === "./prometheus/prometheus.yml");
    const rulesMount = mounts.find((m) => m.source === "./prometheus/alerts.yml");
    expect(configMount && rulesMount).toBeTruthy();
    const config = yamlOf<PromConfig>("deploy/prometheus/prometheus.yml");
    // rule_files are relative to the config file, in the container as here.
    for (const rf of config.rule_files)
      expect(posix.join(posix.dirname(configMount!.target), rf)).toBe(rulesMount!.target);
    const targets = config.scrape_configs.flatMap((c) =>
      c.static_configs.flatMap((sc) => sc.targets.map((t) => ({ job: c.job_name, t }))),
    );
    for (const [name, s] of recoServices) {
      const port = s.environment?.METRICS_PORT ?? "9464";
      const found = targets.find((x) => x.t === `${name}:${port}`);
      expect(found, `Prometheus scrapes ${name}:${port}`).toBeDefined();
      expect(found!.job).toBe(`reco-${s.command![0]}`);
    }
  });

  it("runs Grafana with the provisioned datasource and dashboards mounted where the provider looks", () => {
    const grafana = compose.services.grafana;
    expect(grafana?.image).toMatch(/^grafana\/grafana:/);
    const mounts = mountsOf(grafana!);
    expect(mounts).toContainEqual({
      source: "./grafana/provisioning",
      target: "/etc/grafana/provisioning",
    });
    const provider = yamlOf<{ providers: { options: { path: string } }[] }>(
      "deploy/grafana/provisioning/dashboards/reco-stream.yml",
    ).providers[0]!;
    expect(mounts).toContainEqual({
      source: "./grafana/dashboards",
      target: provider.options.path,
    });
    const ds = yamlOf<{ datasources: { url: string; type: string }[] }>(
      "deploy/grafana/provisioning/datasources/prometheus.yml",
    ).datasources[0]!;
    expect(ds.type).toBe("prometheus");
    expect(new URL(ds.url).hostname).toBe("prometheus");
  });

  it("is accepted by `docker-compose config`", async () => {
    needs("docker-compose");
    await run("docker-compose", ["-f", join(deployDir, "docker-compose.yml"), "config", "-q"]);
  });

  describe("its NATS command lines, run by nats-server here", () => {
    beforeAll(() => needs("nats-server"));
    const servers: EmbeddedNats[] = [];
    let nc: NatsConnection | undefined;
    let dir = "";
    afterAll(async () => {
      await nc?.close();
      await Promise.all(servers.map((s) => s.stop()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("form a 3-node JetStream cluster that takes an R3 stream", async () => {
      dir = await mkdtemp(join(tmpdir(), "reco-deploy-nats-"));
      // The compose flags, with loopback ports for the service names and ports.
      const ports = new Map<string, { cluster: number; http: number }>();
      for (const [name] of natsServices)
        ports.set(name, { cluster: await freePort(), http: await freePort() });
      const local = (url: string) => {
        const u = new URL(url);
        return `nats://127.0.0.1:${ports.get(u.hostname)!.cluster}`;
      };
      for (const [name, s] of natsServices) {
        const args: string[] = [];
        for (const [k, v] of flagsOf(s.command)) {
          if (["jetstream", "store_dir", "port"].includes(k)) continue; // the helper sets these
          if (k === "cluster") args.push(`--cluster=nats://127.0.0.1:${ports.get(name)!.cluster}`);
          else if (k === "routes") args.push(`--routes=${v.split(",").map(local).join(",")}`);
          else if (k === "http_port") args.push(`--http_port=${ports.get(name)!.http}`);
          else args.push(v === "true" ? `--${k}` : `--${k}=${v}`);
        }
        servers.push(
          await startEmbeddedNats({ port: 0, storeDir: join(dir, name), extraArgs: args }),
        );
      }
      // Every node sees both others.
      await until(async () => {
        const routes = await Promise.all(
          [...ports.values()].map(async ({ http }) => {
            const r = await fetch(`http://127.0.0.1:${http}/routez`);
            return ((await r.json()) as { num_routes: number }).num_routes;
          }),
        );
        return routes.every((n) => n >= 2);
      }, "routes between the three nodes");
      nc = await connect({ servers: servers.map((s) => s.url) });
      // Until the JetStream meta group has a leader, JetStream requests fail: retry.
      const info = await until(async () => {
        const jsm = await nc!.jetstreamManager({ timeout: 2_000 });
        return jsm.streams.add({ name: "DEPLOY_R3", subjects: ["deploy.r3"], num_replicas: 3 });
      }, "an R3 stream");
      expect(info.cluster?.name).toBe(flagsOf(natsServices[0]![1].command).get("cluster_name"));
      expect(info.cluster?.replicas ?? []).toHaveLength(2);
      const ack = await nc.jetstream().publish("deploy.r3", "x");
      expect(ack.seq).toBe(1);
    }, 60_000);
  });
});

async function until<T>(probe: () => Promise<T | undefined | false>, what: string): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

interface PromConfig {
  rule_files: string[];
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
}
interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = yamlOf<{ groups: { name: string; rules: Rule[] }[] }>(
  "deploy/prometheus/alerts.yml",
).groups.flatMap((g) => g.rules);

describe("deploy/prometheus/alerts.yml", () => {
  it.each(rules.map((r) => [r.alert ?? r.record ?? "?", r] as const))(
    "%s has for:, a severity and a summary and description",
    (_name, r) => {
      expect(r.alert).toMatch(/^Reco[A-Za-z]+$/);
      expect(r.for).toMatch(/^\d+[smh]$/);
      expect(["critical", "warning", "info"]).toContain(r.labels?.severity);
      expect(r.annotations?.summary?.length).toBeGreaterThan(10);
      expect(r.annotations?.description?.length).toBeGreaterThan(40);
    },
  );

  it("covers DLQ rate, bad-event ratio, consumer lag, watermark delay and restarts", () => {
    const reads = (alert: string) => metricsIn(rules.find((r) => r.alert === alert)?.expr ?? "");
    expect(reads("RecoDeadLetterRate")).toContain("reco_events_dead_lettered_total");
    expect(reads("RecoPoisonMessages")).toContain("reco_dlq_poison_total");
    expect(reads("RecoBadEventRatio")).toContain("reco_bad_event_ratio_alert");
    expect(reads("RecoConsumerLagHigh")).toContain("reco_stage_consumer_lag");
    expect(reads("RecoStageStalled")).toEqual(
      expect.arrayContaining(["reco_stage_position", "reco_stage_consumer_lag"]),
    );
    expect(reads("RecoEventTimeBehind")).toContain("reco_event_time_progress_ms");
    expect(reads("RecoStageRestarting")).toContain("reco_stage_restarts_total");
  });

  it("reads only metrics that the code defines", () => {
    const defined = definedMetrics();
    const unknown = rules.flatMap((r) => metricsIn(r.expr)).filter((n) => !baseMetric(n, defined));
    expect(unknown).toEqual([]);
  });

  it("unit tests (alerts.test.yml) exercise every alert", () => {
    const tests = yamlOf<{ tests: { alert_rule_test: { alertname: string }[] }[] }>(
      "deploy/prometheus/alerts.test.yml",
    ).tests;
    const tested = new Set(tests.flatMap((t) => t.alert_rule_test.map((a) => a.alertname)));
    expect(rules.map((r) => r.alert).filter((a) => !tested.has(a!))).toEqual([]);
  });

  describe("promtool", () => {
    beforeAll(() => needs("promtool"));
    it("check rules", async () => {
      await run("promtool", ["check", "rules", join(deployDir, "prometheus/alerts.yml")]);
    });
    it("check config (prometheus.yml and the rules it loads)", async () => {
      await run("promtool", ["check", "config", join(deployDir, "prometheus/prometheus.yml")]);
    });
    it("test rules: each alert fires on the series it is meant for, and only then", async () => {
      await run("promtool", ["test", "rules", join(deployDir, "prometheus/alerts.test.yml")]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos: { x: number; y: number; w: number; h: number };
}
const dashboard = JSON.parse(read("deploy/grafana/dashboards/reco-stream.json")) as {
  uid: string;
  title: string;
  panels: Panel[];
};
const queryPanels = dashboard.panels.filter((p) => p.type !== "row");

describe("deploy/grafana/dashboards/reco-stream.json", () => {
  const datasource = yamlOf<{ datasources: { uid: string; type: string }[] }>(
    "deploy/grafana/provisioning/datasources/prometheus.yml",
  ).datasources[0]!;

  it("is a dashboard with a uid, a title and unique panel ids inside the 24-column grid", () => {
    expect(dashboard.uid).toBe("reco-stream");
    expect(dashboard.title).toBeTruthy();
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
  });

  it.each(queryPanels.map((p) => [p.title, p] as const))(
    "panel %s has the provisioned datasource and a query",
    (_title, p) => {
      expect(p.datasource).toEqual({ type: datasource.type, uid: datasource.uid });
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets!) {
        expect(t.expr?.trim()).toBeTruthy();
        expect(t.refId).toBeTruthy();
        expect(t.datasource?.uid ?? datasource.uid).toBe(datasource.uid);
      }
    },
  );

  it("queries only metrics that the code defines", () => {
    const defined = definedMetrics();
    const unknown = queryPanels
      .flatMap((p) => p.targets ?? [])
      .flatMap((t) => metricsIn(t.expr ?? ""))
      .filter((n) => !baseMetric(n, defined));
    expect(unknown).toEqual([]);
  });

  it("shows the stage, event, state and gRPC metrics docs/OPERATIONS.md lists", () => {
    const defined = definedMetrics();
    const shown = new Set(
      queryPanels
        .flatMap((p) => p.targets ?? [])
        .flatMap((t) => metricsIn(t.expr ?? ""))
        .map((n) => baseMetric(n, defined)),
    );
    for (const name of [
      "reco_stage_events_in_total",
      "reco_stage_records_out_total",
      "reco_stage_consumer_lag",
      "reco_stage_mailbox_depth",
      "reco_stage_position",
      "reco_event_time_progress_ms",
      "reco_stage_restarts_total",
      "reco_events_dead_lettered_total",
      "reco_dlq_poison_total",
      "reco_events_late_total",
      "reco_bad_event_ratio_alert",
      "reco_stage_snapshot_seconds",
      "reco_stage_state_keys",
      "reco_state_bytes",
      "grpc_requests_total",
      "grpc_request_duration_seconds",
    ])
      expect(shown, name).toContain(name);
  });
});

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

/** Dockerfile instructions, continuation lines joined and comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [op = "", ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

describe("deploy/Dockerfile", () => {
  const all = instructions(read("deploy/Dockerfile"));
  const stages = all.reduce<{ op: string; args: string }[][]>((acc, i) => {
    if (i.op === "FROM") acc.push([]);
    acc[acc.length - 1]?.push(i);
    return acc;
  }, []);
  const final = stages[stages.length - 1]!;
  const one = (op: string) => final.filter((i) => i.op === op).map((i) => i.args);

  it("builds on node:20-bookworm-slim and installs with npm ci", () => {
    for (const s of stages) expect(s[0]!.args).toMatch(/^node:20-bookworm-slim\b/);
    expect(all.some((i) => i.op === "RUN" && /\bnpm ci\b/.test(i.args))).toBe(true);
  });

  it("copies only files that exist and that .dockerignore lets through", () => {
    const ignored = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    for (const i of all.filter((x) => x.op === "COPY" && !x.args.includes("--from"))) {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      for (const src of parts.slice(0, -1)) {
        if (src === ".") continue;
        expect(existsSync(join(root, src)), `${src} exists`).toBe(true);
        expect(ignored, `${src} is not ignored`).not.toContain(src);
      }
    }
    for (const must of ["node_modules", "data", ".git", "proto/gen", ".scratch", "coverage"])
      expect(ignored).toContain(must);
  });

  it("runs as a non-root user", () => {
    const user = one("USER").at(-1);
    expect(user).toBeDefined();
    expect(user!.split(":")[0]).not.toMatch(/^(root|0)$/);
  });

  it("exposes gRPC 50051 and metrics 9464, and sets only known settings", () => {
    expect(one("EXPOSE").join(" ").split(/\s+/)).toEqual(expect.arrayContaining(["50051", "9464"]));
    const env = one("ENV")
      .join(" ")
      .split(/\s+/)
      .map((kv) => kv.split("=")[0]!)
      .filter((k) => k !== "NODE_ENV");
    expect(env).toEqual(expect.arrayContaining(["DATA_DIR", "GRPC_PORT", "METRICS_PORT"]));
    expect(unknownEnvs(env)).toEqual([]);
  });

  it('has ENTRYPOINT ["node","bin/reco.mjs"] and CMD ["start"]', () => {
    expect(JSON.parse(one("ENTRYPOINT").at(-1)!)).toEqual(["node", "bin/reco.mjs"]);
    expect(JSON.parse(one("CMD").at(-1)!)).toEqual(["start"]);
    expect(existsSync(join(root, "bin/reco.mjs"))).toBe(true);
  });

  it("HEALTHCHECK asks /healthz on METRICS_PORT: exit 0 on 200, 1 on 503 or no answer", async () => {
    const hc = one("HEALTHCHECK").at(-1)!;
    const exec = JSON.parse(hc.slice(hc.indexOf("CMD") + 3).trim()) as string[];
    expect(exec[0]).toBe("node");
    let status = 200;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? "");
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    // Asynchronously: the server answering it runs in this process.
    const check = (p: number) =>
      run(process.execPath, exec.slice(1), {
        env: { ...process.env, METRICS_PORT: String(p) },
        timeout: 10_000,
      }).then(
        () => 0,
        (err: { code?: number }) => err.code,
      );
    try {
      expect(await check(port)).toBe(0);
      status = 503;
      expect(await check(port)).toBe(1);
      expect(paths).toEqual(["/healthz", "/healthz"]);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(await check(await freePort())).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

interface Container {
  name: string;
  image: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  ports?: { name?: string; containerPort: number }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: { name: string }[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    clusterIP?: string;
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    ports?: { name: string; port: number; targetPort: string | number }[];
    template?: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: PodSpec;
    };
    volumeClaimTemplates?: { metadata: { name: string } }[];
    podMetricsEndpoints?: { port: string; path: string }[];
  };
}

const k8sDir = "deploy/k8s";
const manifestFiles = readdirSync(join(root, k8sDir)).filter(
  (f) => /\.ya?ml$/.test(f) && !["nats-values.yaml", "kustomization.yaml"].includes(f),
);
const objects: (K8sObject & { file: string })[] = manifestFiles.flatMap((file) =>
  parseAllDocuments(read(`${k8sDir}/${file}`)).map((d) => ({
    ...(d.toJS() as K8sObject),
    file,
  })),
);
const workloads = objects.filter((o) => ["StatefulSet", "Deployment"].includes(o.kind));
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
const containers = workloads.flatMap((w) => w.spec!.template!.spec.containers);
const configMaps = byKind("ConfigMap");

describe("deploy/k8s", () => {
  it("every manifest has apiVersion, kind and a name", () => {
    expect(objects.length).toBeGreaterThanOrEqual(8);
    for (const o of objects) {
      expect(o.apiVersion, o.file).toBeTruthy();
      expect(o.kind, o.file).toBeTruthy();
      expect(o.metadata?.name, o.file).toBeTruthy();
    }
  });

  it("kustomization.yaml lists every manifest but the PodMonitor (which needs the operator's CRDs)", () => {
    const k = yamlOf<{ resources: string[]; images: { name: string }[] }>(
      `${k8sDir}/kustomization.yaml`,
    );
    expect([...k.resources].sort()).toEqual(
      manifestFiles.filter((f) => f !== "podmonitor.yaml").sort(),
    );
    expect(k.images.map((i) => i.name)).toContain("reco-stream");
  });

  it("every container runs the reco-stream image with a role", () => {
    expect(containers.length).toBeGreaterThanOrEqual(2);
    for (const c of containers) {
      expect(c.image).toMatch(/^reco-stream(:|$)/);
      expect(["worker", "gateway", "start"]).toContain(c.args?.[0]);
    }
  });

  it("containers and the ConfigMap set only settings that bin/config.ts knows", () => {
    const names = [
      ...containers.flatMap((c) => (c.env ?? []).map((e) => e.name)),
      ...configMaps.flatMap((cm) => Object.keys(cm.data ?? {})),
    ];
    expect(names.length).toBeGreaterThan(5);
    expect(unknownEnvs(names)).toEqual([]);
    for (const c of containers)
      for (const ef of c.envFrom ?? [])
        expect(configMaps.map((cm) => cm.metadata.name)).toContain(ef.configMapRef?.name);
  });

  it("the ConfigMap points at the NATS cluster of nats-values.yaml with REPLICAS=3", () => {
    const values = yamlOf<NatsValues>(`${k8sDir}/nats-values.yaml`);
    const data = configMaps.find((cm) => cm.data?.NATS_URL)!.data!;
    expect(data.REPLICAS).toBe("3");
    expect(data.NATS_URL!.split(",")).toHaveLength(values.config.cluster.replicas);
    expect(data.PARTITIONS).toBe(workers[0]![1].environment?.PARTITIONS);
  });

  it("readiness and startup probes ask /healthz, liveness /livez, on the metrics port", () => {
    for (const c of containers) {
      const metrics = c.ports?.find((p) => p.containerPort === 9464);
      expect(metrics, `${c.name} declares port 9464`).toBeDefined();
      expect(c.readinessProbe, `${c.name} readiness`).toBeDefined();
      expect(c.livenessProbe, `${c.name} liveness`).toBeDefined();
      // /healthz is 503 while NATS is down; restarting the pod would not help.
      expect(c.livenessProbe?.httpGet?.path).toBe("/livez");
      for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        if (!probe) continue;
        if (probe !== c.livenessProbe) expect(probe.httpGet?.path).toBe("/healthz");
        expect([metrics!.name, metrics!.containerPort]).toContain(probe.httpGet?.port);
      }
      expect(c.resources?.requests?.cpu && c.resources.requests.memory).toBeTruthy();
      expect(c.resources?.limits?.memory).toBeTruthy();
    }
  });

  it("pods run as a non-root user", () => {
    for (const w of workloads) {
      const sc = w.spec!.template!.spec.securityContext;
      expect(sc?.runAsNonRoot, w.metadata.name).toBe(true);
      expect(sc?.runAsUser).toBeGreaterThan(0);
    }
  });

  it("workers are a StatefulSet: WORKER_ID from the pod name, a PVC at DATA_DIR", () => {
    const [sts] = byKind("StatefulSet");
    expect(sts).toBeDefined();
    const worker = sts!.spec!.template!.spec.containers[0]!;
    expect(worker.args).toEqual(["worker"]);
    const id = worker.env?.find((e) => e.name === "WORKER_ID");
    expect(id?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
    const dataDir = worker.env?.find((e) => e.name === "DATA_DIR")?.value;
    const claim = sts!.spec!.volumeClaimTemplates?.[0]?.metadata.name;
    expect(worker.volumeMounts).toContainEqual({ name: claim, mountPath: dataDir });
    const headless = byKind("Service").find((s) => s.metadata.name === sts!.spec!.serviceName);
    expect(headless?.spec?.clusterIP).toBe("None");
  });

  it("the gateway is a Deployment behind a Service on gRPC 50051 and metrics 9464", () => {
    const [dep] = byKind("Deployment");
    expect(dep?.spec!.template!.spec.containers[0]!.args).toEqual(["gateway"]);
    const podLabels = dep!.spec!.template!.metadata.labels;
    const svc = byKind("Service").find((s) =>
      Object.entries(s.spec?.selector ?? {}).every(([k, v]) => podLabels[k] === v),
    );
    expect(svc, "a Service selects the gateway pods").toBeDefined();
    const ports = dep!.spec!.template!.spec.containers[0]!.ports ?? [];
    for (const want of [50051, 9464]) {
      const sp = svc!.spec!.ports!.find((p) => p.port === want);
      expect(sp, `Service port ${want}`).toBeDefined();
      const target = ports.find((p) => p.name === sp!.targetPort || p.containerPort === want);
      expect(target?.containerPort).toBe(want);
    }
  });

  it("every Service and workload selector matches the pods it is meant for", () => {
    const pods = workloads.map((w) => w.spec!.template!.metadata.labels);
    for (const w of workloads)
      for (const [k, v] of Object.entries(w.spec!.selector!.matchLabels ?? {}))
        expect(w.spec!.template!.metadata.labels[k]).toBe(v);
    for (const s of byKind("Service"))
      expect(
        pods.some((l) => Object.entries(s.spec!.selector ?? {}).every(([k, v]) => l[k] === v)),
        s.metadata.name,
      ).toBe(true);
  });

  it("pods are scraped: prometheus.io annotations and a PodMonitor on the metrics port", () => {
    for (const w of workloads) {
      const a = w.spec!.template!.metadata.annotations ?? {};
      expect(a["prometheus.io/scrape"]).toBe("true");
      expect(a["prometheus.io/port"]).toBe("9464");
      expect(a["prometheus.io/path"]).toBe("/metrics");
    }
    const [pm] = byKind("PodMonitor");
    const sel = pm!.spec!.selector!.matchLabels!;
    for (const w of workloads)
      for (const [k, v] of Object.entries(sel))
        expect(w.spec!.template!.metadata.labels[k]).toBe(v);
    expect(pm!.spec!.podMetricsEndpoints?.[0]).toMatchObject({ port: "metrics", path: "/metrics" });
  });

  it("nats-values.yaml asks the nats/nats chart for 3 clustered nodes with JetStream on a PVC", () => {
    const v = yamlOf<NatsValues>(`${k8sDir}/nats-values.yaml`);
    expect(v.config.cluster).toMatchObject({ enabled: true, replicas: 3 });
    expect(v.config.jetstream.enabled).toBe(true);
    expect(v.config.jetstream.fileStore.enabled).toBe(true);
    expect(v.config.jetstream.fileStore.pvc.enabled).toBe(true);
    expect(v.config.jetstream.fileStore.pvc.size).toMatch(/^\d+[GM]i$/);
    expect(v.container.image.tag).toMatch(/^2\.9\b/);
  });

  it("`kubectl kustomize` renders it, all in one namespace", async () => {
    needs("kubectl");
    const { stdout } = await run("kubectl", ["kustomize", join(root, k8sDir)]);
    const rendered = parseAllDocuments(stdout).map((d) => d.toJS() as K8sObject);
    expect(rendered.length).toBe(objects.filter((o) => o.file !== "podmonitor.yaml").length);
    for (const o of rendered.filter((x) => x.kind !== "Namespace"))
      expect((o.metadata as { namespace?: string }).namespace, o.metadata.name).toBe("reco");
  });
});

interface NatsValues {
  config: {
    cluster: { enabled: boolean; replicas: number };
    jetstream: {
      enabled: boolean;
      fileStore: { enabled: boolean; pvc: { enabled: boolean; size: string } };
    };
  };
  container: { image: { tag: string } };
}
