import { execFile, spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { promisify } from "node:util";
import { Registry, collectDefaultMetrics } from "prom-client";
import { parse } from "yaml";
import { expect } from "vitest";

/**
 * What the deploy/ checks (test/deploy-*.test.ts) read: Docker and Kubernetes do not run here,
 * so deploy/'s files are parsed and checked against the code (settings, metric names, ports,
 * health path), and where a checker is installed (promtool, docker-compose, kubectl,
 * nats-server) it runs too. Kept in one place so that every file checks against the same
 * settings, the same metric names and the same reading of docker-compose.yml.
 */

export const run = promisify(execFile);
/** The repository: this file is in test/helpers/. */
export const root = resolve(import.meta.dirname, "../..");
export const deployDir = join(root, "deploy");
export const read = (path: string) => readFileSync(join(root, path), "utf8");
export const yamlOf = <T>(path: string): T => parse(read(path), { merge: true }) as T;
const onPath = (bin: string) => spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;
/** Debian's package of each tool these tests run (`bash .ci/run` installs them). */
const PACKAGES: Record<string, string> = {
  "docker-compose": "docker-compose",
  "nats-server": "nats-server",
  promtool: "prometheus",
  kubectl: "kubectl",
};
/** Fails, naming the tool and its package, when a tool the test runs is not installed. */
export const needs = (bin: string) => {
  if (!onPath(bin))
    throw new Error(
      `${bin} is not installed: this test runs it (apt-get install ${PACKAGES[bin] ?? bin}; bash .ci/run installs it)`,
    );
};

/** Every env name the settings table declares (`env: "NAME"` in SETTINGS, bin/config-settings.ts). */
export const SETTING_ENVS = [
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
export const KNOWN_ENVS = new Set([...SETTING_ENVS, ...ROLE_ENVS]);
export const unknownEnvs = (names: Iterable<string>) =>
  [...names].filter((n) => !KNOWN_ENVS.has(n));

/** Files under `dir` whose name `keep` accepts, as paths from the repository. */
export function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && keep(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

// ---------------------------------------------------------------------------------------------
// Metric names

/** Metric names the code registers: `name: "reco_..."` / `name: "grpc_..."` in the sources. */
export function definedMetrics(): Set<string> {
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
export function metricsIn(expr: string): string[] {
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
export function baseMetric(name: string, defined: Set<string>): string | undefined {
  if (defined.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, "");
  return base !== name && defined.has(base) ? base : undefined;
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: string[];
}
export interface Compose {
  services: Record<string, ComposeService>;
  volumes: Record<string, unknown>;
}

export const compose = yamlOf<Compose>("deploy/docker-compose.yml");
const services = Object.entries(compose.services);
export const natsServices = services.filter(([, s]) => s.image?.startsWith("nats:"));
const role = (r: string) => services.filter(([, s]) => s.command?.[0] === r);
export const workers = role("worker");
export const gateways = role("gateway");
export const recoServices = [...workers, ...gateways];

/** `--key=value` flags of a nats-server command line (a bare `--key` is "true"). */
export function flagsOf(command: string[] = []): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of command) {
    const m = /^--?([\w-]+)(?:=(.*))?$/.exec(arg);
    expect(m, `nats-server argument ${arg} is written --key=value`).not.toBeNull();
    flags.set(m![1]!, m![2] ?? "true");
  }
  return flags;
}

/** `source:target[:mode]` volume entries of a service, as { source, target }. */
export function mountsOf(s: ComposeService): { source: string; target: string }[] {
  return (s.volumes ?? []).map((v) => {
    const [source = "", target = ""] = v.split(":");
    return { source, target };
  });
}
