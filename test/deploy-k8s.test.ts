import { describe, expect, it } from "vitest";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { needs, read, root, run, unknownEnvs, workers, yamlOf } from "./helpers/deploy.js";

/**
 * deploy/k8s: Kubernetes does not run here, so the manifests are read and checked against the
 * code (settings, ports, health paths), against each other (selectors, the ConfigMap, the
 * kustomization) and against docker-compose.yml's PARTITIONS; `kubectl kustomize` renders them
 * where installed.
 */

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
