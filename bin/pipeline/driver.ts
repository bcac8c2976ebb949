import { createSupervisor } from "../../runtime/index.js";
import {
  createStageInstance,
  type PoisonLedger,
  type StageHandler,
  type StageInstance,
  type StageSpec,
} from "../../actors/host/index.js";
import type { SnapshotStore } from "../../state/index.js";
import { createStageState } from "../../state/store.js";
import type { Recommendations } from "../../actors/contract/index.js";
import type { JoinHandler, ParseView, PopularityRow } from "../../actors/stages/index.js";
import {
  answerFor,
  createPopularityTable,
  type PopularityTable,
} from "../../actors/stages/index.js";
import { partitionOf, buckets, subjects } from "../../actors/contract/index.js";
import { HOP_STAGES, STREAMS } from "../../connectors/nats/topology.js";
import { EVENTS_STREAM } from "../../connectors/nats/streams.js";
import { createMemoryLog, type MemoryLog } from "../../connectors/memory/log.js";
import { wireStages } from "./stages.js";
import type { PipelineConfig } from "./config.js";

/**
 * The design stages (parse, watermark, window, interest-ranking, popularity-join, popularity,
 * trending) run in memory, without a server, like Kafka Streams' TopologyTestDriver: the same
 * wiring (stages.ts) and the same stage host as in production, on an in-memory log
 * (connectors/memory/log.ts) and in-memory state. Events go in with `publish`; once `settled()`
 * resolves, answers, tables, KV buckets and the late and dead-letter streams can be read.
 * A reference comparison runs on it in seconds (test/reference-driver.test.ts).
 */
export interface Driver {
  readonly log: MemoryLog;
  /** Publishes raw events (JSON objects) to `events.<event_type>`, in order. */
  publish(events: readonly object[]): void;
  /** Resolves once nothing has moved for a while: every input delivered and processed. */
  settled(): Promise<void>;
  /** GetRecommendations as the design ranking answers it (RANKER=design). */
  recommend(userId: string, n: number): Recommendations;
  /** The popularity table as the serving side holds it. */
  popularity(): PopularityRow[];
  instance(id: string): StageInstance<StageHandler> | undefined;
  stop(): Promise<void>;
}

/** A snapshot store that keeps nothing: a restarted instance replays its input from the start. */
export function forgetfulStore(): SnapshotStore {
  return {
    load: () => Promise.resolve(createStageState()),
    capture: () => ({ keys: 0, commit: () => Promise.resolve() }),
    write: () => Promise.resolve(0),
    clear: () => Promise.resolve(),
    exportRaw: () => Promise.resolve({ meta: {}, entries: [] }),
    metaSeq: () => Promise.resolve(0),
    importRaw: () => Promise.resolve(),
  };
}

export async function startDriver(cfg: PipelineConfig): Promise<Driver> {
  const log = createMemoryLog();
  log.addStream(EVENTS_STREAM, ["events.>"]);
  log.addStream(STREAMS.hops, [
    ...HOP_STAGES.map((s) => `reco.${s}.*`),
    subjects.pairsAll,
    subjects.collabAll,
  ]);
  log.addStream(STREAMS.dlq, ["reco.dlq.>"]);
  log.addStream(STREAMS.late, ["reco.late"]);
  log.addStream(STREAMS.items, [subjects.itemsUpsert]);

  const supervisor = createSupervisor({
    id: "driver",
    restart: { count: 5, period: 60_000, delay: 10, maxDelay: 100 },
  });
  const instances = new Map<string, StageInstance<StageHandler>>();
  const run = <H extends StageHandler>(spec: StageSpec<H>) => {
    const id = `${spec.stage}/${spec.partition}`;
    const ledger: PoisonLedger = new Map();
    supervisor.supervise(id, () => {
      const inst = createStageInstance(
        spec,
        {
          transport: log,
          snapshots: forgetfulStore(),
          snapshotIntervalMs: 3_600_000,
          snapshotEveryMessages: Number.MAX_SAFE_INTEGER,
          maxAttempts: cfg.maxAttempts,
        },
        ledger,
      );
      instances.set(id, inst as unknown as StageInstance<StageHandler>);
      return inst.actor;
    });
  };
  wireStages(cfg, {
    run,
    // Never asked with IDLE_TIMEOUT_MS=0; otherwise: always caught up, nobody pulling.
    idleProbe: () => {
      const n = log.messages(EVENTS_STREAM).length;
      return Promise.resolve({ pending: 0, delivered: n, ackFloor: n, waiting: 0 });
    },
  });

  // The serving side's table, fed from the bucket as the KV watch feeds it.
  const table: PopularityTable = createPopularityTable();
  (table as { initialised: boolean }).initialised = true;
  const unwatch = log.watchKv(buckets.popularity, (_key, row) => table.apply(row as PopularityRow));
  await supervisor.ready();

  const enc = new TextEncoder();
  return {
    log,
    publish(events) {
      for (const e of events)
        log.publish(
          `events.${String((e as { event_type?: unknown }).event_type)}`,
          enc.encode(JSON.stringify(e)),
        );
    },
    async settled() {
      // Quiet for three checks in a row: batches wait up to T ms (10 T while backlogged), and
      // trending writes its KV puts on a processing-time tick.
      const wait = Math.max(50, cfg.batchMaxDelayMs, Math.min(1000, cfg.trendingTriggerMs));
      let quiet = 0;
      let last = -1;
      while (quiet < 3) {
        await new Promise((r) => setTimeout(r, wait));
        const busy =
          log.delivering() ||
          [...instances.values()].some((i) => i.actor.mailboxDepth() > 0) ||
          // Progress parse has yet to tell the partitions without records (its tick will).
          (instances.get("parse/0")?.handler() as Partial<ParseView> | undefined)
            ?.broadcastPending === true;
        quiet = !busy && log.stored() === last ? quiet + 1 : 0;
        last = log.stored();
      }
    },
    recommend(userId, n) {
      const p = partitionOf(userId, cfg.partitions);
      const join = instances.get(`popularity-join/${p}`)?.handler() as JoinHandler | undefined;
      if (!join) throw new Error(`popularity-join/${p} is not running`);
      return answerFor(
        userId,
        n,
        join.profile(userId),
        table,
        {
          size: cfg.fallbackSize,
          score: 0.1,
          interestHorizonMs: cfg.interestHorizonMs,
          userOutOfOrdernessMs: cfg.userOutOfOrdernessMs,
        },
        (_profile, now) => join.candidates(userId, table, now, n),
      );
    },
    popularity: () => table.top(Number.MAX_SAFE_INTEGER),
    instance: (id) => instances.get(id),
    async stop() {
      unwatch();
      await supervisor.stop();
    },
  };
}
