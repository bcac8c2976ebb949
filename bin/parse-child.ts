/**
 * The parse process: forked by `reco start` (bin/parse-process.ts) to run the parse unit on a
 * core of its own. Not meant to be started by hand: it waits for its settings on the IPC channel.
 */
import { pino, type Logger } from "pino";
import { getHeapStatistics } from "node:v8";
import { Gauge } from "prom-client";
import { startPipeline, type Pipeline } from "./pipeline/pipeline.js";
import { parseProcessStages } from "./pipeline/units.js";
import { createMetrics } from "../connectors/http/metrics.js";
import type { StateDb } from "../state/index.js";
import { connectWithStatus } from "./nats-connect.js";
import { watchNats, watchStages, watchStateDb } from "./health.js";
import { StateStoreCorruptError, StateStoreOpenError } from "../state/index.js";
import type { AppConfig } from "./config.js";
import {
  openUnlocked,
  parseStateDir,
  type FromParseChild,
  type ToParseChild,
} from "./parse-process.js";
import { whenJetStreamAnswers } from "../connectors/nats/topology.js";
import { engineMarkerKey } from "../connectors/nats/engine-key.js";
import { deploymentCovisit } from "./covisit-layout.js";
import { envelopeCodec } from "../actors/host/index.js";
import { faultsFromEnv } from "./test-faults.js";
import { childChannel } from "./child-ipc.js";
import { applyHeapSettings } from "./heap-growth.js";

const send = childChannel("bin/parse-child.ts", "PARSE_PROCESS=1");

let log: Logger = pino({ level: "info" });
let stopping: Promise<void> | undefined;
let stopApp: () => Promise<void> = async () => undefined;

/**
 * Its state store is corrupt or cannot be opened: a restart would fail the same way, so the
 * parent is told (it exits, naming the path and the way out) before this process exits.
 */
const cannotRun = (err: Error): void => {
  const exit = () => process.exit(1);
  setTimeout(exit, 1_000).unref();
  if (process.connected)
    process.send!({ type: "fatal", message: err.message } satisfies FromParseChild, exit);
  else exit();
};

process.on("message", (m: ToParseChild) => {
  if (m.type === "start")
    void run(m.cfg, m.natsUrl).catch((err: unknown) => {
      if (err instanceof StateStoreCorruptError || err instanceof StateStoreOpenError)
        return cannotRun(err);
      log.fatal({ err: err instanceof Error ? err.message : String(err) }, "parse process failed");
      process.exit(1);
    });
  else if (m.type === "stop") {
    stopping ??= stopApp().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: String(err) }, "parse process: stop failed");
        process.exit(1);
      },
    );
  }
});

async function run(cfg: AppConfig, natsUrl: string): Promise<void> {
  log = pino({ level: cfg.logLevel }).child({ proc: "parse" });
  const cleanups: (() => Promise<unknown>)[] = [];
  stopApp = async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  const nc = await connectWithStatus(cfg, natsUrl, "reco-parse", log);
  cleanups.push(() => nc.drain());
  const nats = watchNats(nc);
  cleanups.push(async () => nats.stop());
  const statePath = parseStateDir(cfg.dataDir);
  // The faults a test gave the parent reach this process by its inherited environment.
  const faults = faultsFromEnv(process.env);
  const rawStateDb = await openUnlocked(
    statePath,
    10_000,
    faults.onSnapshotWrite ? { onSnapshotWrite: faults.onSnapshotWrite } : {},
  );
  cleanups.push(() => rawStateDb.close());
  const watched = watchStateDb(rawStateDb, statePath, { onCorrupt: cannotRun });
  const stateDb = watched.db;
  const metrics = createMetrics();
  maintain(stateDb, metrics.registry, log, cleanups);
  const here = parseProcessStages(cfg.parseProcessStages);
  // The deployment's item partitions of co-visitation, as the main process has them.
  const covisitPartitions = await deploymentCovisit(nc, cfg);
  const pipeline: Pipeline = await startPipeline(
    { ...cfg.pipeline, covisitPartitions },
    {
      nc,
      stateDb,
      metrics,
      log: (obj, msg) => log.warn(obj, msg),
      markerKey: () =>
        whenJetStreamAnswers(() => engineMarkerKey(nc, { replicas: cfg.pipeline.replicas })),
      onFatal: (err) => {
        log.fatal({ err: err.message }, "supervision gave up: exiting");
        process.exit(70);
      },
      // Parse, and with PARSE_PROCESS_STAGES=ingest the stages no answer reads in the main process.
      ownership: {
        mode: "units",
        units: [
          "parse",
          // The partitions' units, where some of their stages run here.
          ...(here.size > 1
            ? Array.from({ length: cfg.pipeline.partitions }, (_, p) => `p${p}`)
            : []),
        ],
        stages: (stage) => here.has(stage),
      },
      serve: false,
      // With PARSE_PROCESS_STAGES=ingest this process reads partitions' hops beside the main one.
      processTag: "pp",
      host: { codec: envelopeCodec({ rows: faults.hopRows }), faults: faults.host },
    },
  );
  cleanups.push(() => pipeline.stop());
  // As the main process does once started (bin/main.ts): this process ingests at full rate too,
  // and at V8's own growth its heap grew to ~4x what it keeps (the child was 150-212 MiB at bench
  // step 7's 200k-1M users for ~16 B of dedupe memory per event).
  const growth = applyHeapSettings(cfg);
  cleanups.push(async () => growth.stop());
  new Gauge({
    name: "reco_parse_heap_growing_percent",
    help: "The parse process's V8 heap growth limit now (HEAP_GROWING_PERCENT, more for a small heap: HEAP_GROWING_MIN_MB; 0: V8's own)",
    registers: [metrics.registry],
    collect() {
      this.set(growth.percent());
    },
  });
  // Where this process's memory is (its RSS is ~15% of the app's at 1M users in bench step 7):
  // the default metrics are the main process's names, so the parent's registry would clash.
  new Gauge({
    name: "reco_parse_memory_bytes",
    help: "The parse process's memory: V8 heap held and used, memory outside the heap (external, array buffers)",
    labelNames: ["kind"],
    registers: [metrics.registry],
    collect() {
      const h = getHeapStatistics();
      const m = process.memoryUsage();
      this.set({ kind: "heap_held" }, h.total_heap_size);
      this.set({ kind: "heap_used" }, h.used_heap_size);
      this.set({ kind: "external" }, m.external);
      this.set({ kind: "array_buffers" }, m.arrayBuffers);
    },
  });
  const stages = watchStages(
    pipeline.supervisor.events$,
    (id) => pipeline.supervisor.child(id)?.getStatus(),
    { failingMs: cfg.healthStageFailingMs },
  );
  // The parent's /healthz reads the last report: it never waits for this process.
  const health = setInterval(() => {
    const now = Date.now();
    send({ type: "health", problems: [nats, watched, stages].flatMap((c) => c.check(now)) });
  }, 1_000);
  cleanups.push(async () => {
    clearInterval(health);
    stages.stop();
  });

  let reported = -1;
  let reportedSum = -1;
  const positions = setInterval(() => {
    const seq = pipeline.instance("parse/0")?.position() ?? 0;
    // Every instance's position, when any moved (the bench's "caught up" reads them).
    const stages: Record<string, number> = {};
    let sum = 0;
    for (const id of pipeline.instanceIds())
      sum += stages[id] = pipeline.instance(id)?.position() ?? 0;
    if (seq !== reported || sum !== reportedSum) {
      reportedSum = sum;
      send({ type: "position", seq: (reported = seq), stages });
    }
  }, 100);
  cleanups.push(async () => clearInterval(positions));
  process.on("message", (m: ToParseChild) => {
    if (m.type === "metrics")
      void metrics.registry.getMetricsAsJSON().then(
        (metrics) => send({ type: "metrics", id: m.id, metrics }),
        () => send({ type: "metrics", id: m.id, metrics: [] }),
      );
  });
  // Ready once every stage here runs (the main process's ready line waits for it).
  await pipeline.ready();
  // A stop asked for while starting: the cleanups are complete only now.
  if (stopping === undefined) send({ type: "ready" });
}

/** As the main process does for its own store: report the size, compact now and then. */
function maintain(
  stateDb: StateDb,
  registry: ReturnType<typeof createMetrics>["registry"],
  log: Logger,
  cleanups: (() => Promise<unknown>)[],
): void {
  let bytes = 0;
  const size = () =>
    void stateDb.sizeBytes().then(
      (b) => (bytes = b),
      () => undefined,
    );
  size();
  new Gauge({
    name: "reco_state_bytes",
    help: "Bytes of the LevelDB state store on disk",
    registers: [registry],
    collect() {
      this.set(bytes);
    },
  });
  const sizeTimer = setInterval(size, 30_000);
  const compactTimer = setInterval(
    () =>
      void stateDb
        .compact()
        .catch((err: unknown) => log.warn({ err: String(err) }, "state compaction failed")),
    10 * 60_000,
  );
  cleanups.push(async () => {
    clearInterval(sizeTimer);
    clearInterval(compactTimer);
  });
}
