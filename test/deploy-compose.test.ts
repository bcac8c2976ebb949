import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import {
  freePort,
  startEmbeddedNats,
  type EmbeddedNats,
} from "../connectors/nats/embedded-server.js";
import {
  compose,
  deployDir,
  flagsOf,
  gateways,
  mountsOf,
  natsServices,
  needs,
  recoServices,
  root,
  run,
  unknownEnvs,
  workers,
  yamlOf,
} from "./helpers/deploy.js";

/**
 * deploy/docker-compose.yml: Docker does not run here, so the file is read and checked against
 * the code and against the other files it mounts (prometheus.yml, alerts.yml, Grafana's
 * provisioning). `docker-compose config` checks it where installed, and its NATS command lines
 * are run by nats-server: whether three nodes form a cluster cannot be read off their flags.
 */

/** The part of deploy/prometheus/prometheus.yml the compose file's Prometheus depends on. */
interface PromConfig {
  rule_files: string[];
  scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
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
          if (["jetstream", "store_dir", "port"].includes(k)) continue; // startEmbeddedNats sets these
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
      let seen = "none read";
      await until(
        async () => {
          const routes = await Promise.all(
            [...ports.values()].map(async ({ http }) => {
              const r = await fetch(`http://127.0.0.1:${http}/routez`);
              return ((await r.json()) as { num_routes: number }).num_routes;
            }),
          );
          seen = routes.join(", ");
          return routes.every((n) => n >= 2);
        },
        () => `routes between the three nodes (routes per node last read: ${seen})`,
      );
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

/**
 * `probe`'s first value, polled every 250 ms (a failed probe counts as none yet): a cluster
 * forms in its own time. Throws after 30 s, naming `what` (with what the probe last saw).
 */
async function until<T>(
  probe: () => Promise<T | undefined | false>,
  what: string | (() => string),
): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
