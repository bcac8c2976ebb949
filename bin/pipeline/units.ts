import type { NatsConnection } from "nats";
import type { Supervisor } from "../../runtime/index.js";
import type { StageHandler, StageInstance } from "../../actors/host/index.js";
import type { StateDb } from "../../state/index.js";
import { createLeaseManager, type LeaseManager } from "../../connectors/nats/leases.js";
import { whenJetStreamAnswers } from "../../connectors/nats/topology.js";
import { downloadTimeoutMs, seqOf, type SnapshotArchive } from "../../state/archive.js";
import { createArchiveRounds, type ArchiveRounds } from "./archive-rounds.js";
import { membersOfStage } from "../../actors/host/index.js";
import { USER_PATH } from "./plan-snapshots.js";

/**
 * Units of ownership: `parse`, and `p0`..`p<P-1>` (a partition's user-path and item-path stages
 * and its serving actor). A unit starts and stops as a whole, on this process's say (`all`,
 * `units`) or its leases' (`leases`: workers of a cluster).
 */

export interface LeaseOwnership {
  mode: "leases";
  workerId: string;
  /** Lease time; a dead worker's partitions move after at most this long. */
  leaseTtlMs: number;
  archive: SnapshotArchive;
  /**
   * Snapshots of owned instances that took input go to the archive this often, or less often
   * when a round is slow (archive-rounds.ts), and on a graceful release.
   */
  archiveEveryMs: number;
}

export type Ownership =
  | { mode: "all" }
  | {
      mode: "units";
      units: readonly string[];
      /**
       * Which of the units' stages run here (absent: all of them): `reco start` with
       * PARSE_PROCESS=1 and PARSE_PROCESS_STAGES=ingest splits each partition's unit between its
       * two processes (see parseProcessStages).
       */
      stages?: (stage: string) => boolean;
    }
  | LeaseOwnership;

/**
 * The stages `reco start` runs in its parse process (PARSE_PROCESS=1, bin/parse-child.ts), by
 * PARSE_PROCESS_STAGES: parse alone (`parse`, the default), or (`ingest`) parse and every stage
 * whose state no answer reads in the main process. Their outputs reach the main process over
 * JetStream as before: interest-ranking's profiles (popularity-join), popularity's table and
 * trending's lists (KV buckets); drift's figures in the merged /metrics. The main process keeps
 * what an answer reads locally: popularity-join's profiles and the fallback actors, and the
 * blend's sources (history with the prequential scorer, covisit, collaborative). Step 2 (bench/
 * README "What limits"): with `parse` the main thread ran ~82% of the stages' time,
 * with `ingest` ~60%, and the two processes' CPU per event together the same.
 */
export function parseProcessStages(which: "parse" | "ingest"): ReadonlySet<string> {
  return which === "ingest" ? INGEST_STAGES : PARSE_ONLY;
}
const PARSE_ONLY: ReadonlySet<string> = new Set(["parse"]);
const INGEST_STAGES: ReadonlySet<string> = new Set([
  "parse",
  "watermark",
  "window",
  "interest-ranking",
  "drift",
  "popularity",
  "trending",
  "catalogue",
  "catalogue-upsert",
]);

/** Stage instances by "<stage>/<partition>" (current incarnation). */
export type Instances = Map<string, StageInstance<StageHandler>>;

export interface Units {
  /** The unit of a stage instance. */
  unitOf(stage: string, partition: number): string;
  register(unit: string, id: string, start: () => void): void;
  names(): string[];
  has(unit: string): boolean;
  /** Starts a unit's instances: all of them, or one tier (see START_TIERS). */
  start(unit: string, which?: StartTier | "all"): void;
  /** Stops a unit's instances: no more input, and with `graceful` a final snapshot first. */
  stop(unit: string, graceful: boolean): Promise<void>;
  /** The unit's stage instances (its serving actor left out). */
  stageIds(unit: string): string[];
  /**
   * The input consumer of a stage instance reading `subject`, named after its unit's lease (see
   * leaseConsumer), and the one it shares with the unit's other readers of a partition's hops
   * (sharedInput).
   */
  consumer(stage: string, partition: number, subject: string): InputConsumer;
  /** The lease (epoch) a unit is held under, set before it starts (leases only). */
  setEpoch(unit: string, epoch: number): void;
  /** Each unit's estimated CPU per event (µs, unitWeights): what a cluster places by. */
  weights(): Map<string, number>;
}

/**
 * Estimated CPU per event of the whole stream (µs) by stage, what a cluster spreads units by
 * (leases.ts placeUnits). From bench step 2 (200,000 events, 8 partitions, the blend): each
 * stage's own estimate times 2.5 for its share of what the main process spends outside the
 * stages (the nats client, GC and V8's helper threads, LevelDB: ~150 µs beside ~85 µs in the
 * stages), parse with its process's whole CPU, the collaborative trainer with its ALS
 * trainings (~60 µs). Rough on purpose: what matters is that parse and the trainer each weigh
 * about as much as two or three partitions, not one.
 */
const STAGE_COST_US: Readonly<Record<string, number>> = {
  parse: 46,
  "collaborative-trainer": 63,
  history: 85,
  covisit: 52,
  watermark: 3,
  window: 8,
  "interest-ranking": 20,
  collaborative: 14,
  drift: 7,
  trending: 6.5,
  "popularity-join": 5,
  catalogue: 3.5,
  popularity: 3,
};
/** A stage not in the table. */
const OTHER_STAGE_COST_US = 1;

/**
 * Each unit's estimated CPU per event: its stage instances' shares of their stages' costs (a
 * stage's cost split evenly over its instances, a chain's the sum of its members').
 */
export function unitWeights(
  stageIdsByUnit: ReadonlyMap<string, readonly string[]>,
): Map<string, number> {
  const stagesOf = (id: string) => membersOfStage(id.slice(0, id.indexOf("/")));
  const instances = new Map<string, number>();
  for (const ids of stageIdsByUnit.values())
    for (const id of ids)
      for (const stage of stagesOf(id)) instances.set(stage, (instances.get(stage) ?? 0) + 1);
  const weights = new Map<string, number>();
  for (const [unit, ids] of stageIdsByUnit) {
    let w = 0;
    for (const id of ids)
      for (const stage of stagesOf(id))
        w += (STAGE_COST_US[stage] ?? OTHER_STAGE_COST_US) / instances.get(stage)!;
    weights.set(unit, w);
  }
  return weights;
}

/** A stage instance's input consumer: its own name, and the shared one when it has one. */
export interface InputConsumer {
  name: string;
  stale?: (name: string) => boolean;
  shared?: { durable: string; stale?: (name: string) => boolean };
}

/**
 * The name of the consumer a process's readers of a partition's hops share (parse's outputs:
 * `reco.parse.<p>`, read by the user path's chain, history, drift and collaborative;
 * `reco.items.<q>`, read by catalogue, popularity and trending), without leases; undefined for
 * any other subject (one reader, or a merged stage's wildcard).
 */
export function sharedInput(
  subject: string,
  partitions: number,
  /** The process's tag (PipelineDeps.processTag), when another process reads the same hops. */
  tag?: string,
): string | undefined {
  const [a, b, c, ...rest] = subject.split(".");
  if (a !== "reco" || (b !== "parse" && b !== "items") || rest.length > 0) return undefined;
  if (c === undefined || !/^\d+$/.test(c) || Number(c) >= partitions) return undefined;
  return tag ? `in_${b}_${c}_${tag}` : `in_${b}_${c}`;
}

/** A stage instance's durable consumer name, without leases (see leaseConsumer). */
export const consumerBase = (stage: string, partition: number): string =>
  // A chain's name joins its stages with "+", which consumer names do not take.
  `${stage.replaceAll("+", "_")}_${partition}`;

/**
 * A stage instance's consumer name under lease `epoch` (undefined: no leases, `base` as is), and
 * the names it replaces: the plain one and older leases'. One name per lease: an owner whose lease
 * moved on while its stop was slow or forced (STOP_TIMEOUT_MS) pulled from, acked and re-placed
 * the consumer of the same name, which was the new owner's.
 */
export function leaseConsumer(
  base: string,
  epoch: number | undefined,
): { name: string; stale?: (name: string) => boolean } {
  if (epoch === undefined) return { name: base };
  const prefix = `${base}_e`;
  return {
    name: `${prefix}${epoch}`,
    stale: (n) =>
      n === base ||
      (n.startsWith(prefix) &&
        /^\d+$/.test(n.slice(prefix.length)) &&
        Number(n.slice(prefix.length)) < epoch),
  };
}

/**
 * The order instances start in at process start (snapshot loads run one at a time, in start
 * order): `serving`, what gRPC needs to answer at all (popularity-join's profiles and the fallback
 * actor that answers from them), then gRPC binds; then what the blended answer reads
 * (recommender-wiring.ts's view: until history and covisit run, answers are the design
 * ranking's), smallest and surest first: every partition's `history` (~20 ms each with 1M
 * users), `covisit` (per item partition), then `collaborative` (per user partition, read only
 * when it serves a trained model: loaded before it, the first right answers of a restart
 * without one waited ~0.3 s for its 1M rows); then the `rest` (trending, popularity, drift, the
 * catalogue, ...), which only moves answers once new events arrive; then the `user-path`
 * (watermark, window, interest-ranking: popularity-join serves their profiles from its own
 * snapshot), whose handlers rebuild every user's interests from their cells (~1 s per partition
 * with 1M users): among the rest partition by partition, they held trending's and popularity's
 * last instances back until the ready line (bench/restart-ab.ts, 1M users: 9.9-10.2 s after the
 * spawn, now 4.9-5.1 s); the collaborative `trainer` last: its copies of every partition's rows
 * are the largest snapshot, its served models are on their shelf meanwhile, and its training,
 * started before the user path's rebuilds, took the core they needed (ready line 13.5-13.9 s
 * against 10.6-11.4 s with the trainer last).
 * Loading partition by partition instead put the last history instance behind every other
 * stage's snapshot: 15.8 s of wrong answers after the bind with 1M users (bench step 6).
 */
export const START_TIERS = [
  "serving",
  "history",
  "covisit",
  "collaborative",
  "rest",
  "user-path",
  "trainer",
] as const;
export type StartTier = (typeof START_TIERS)[number];
export function tierOf(id: string): StartTier {
  // A chain starts with its earliest member's tier (its members share one: chains.ts).
  const tiers = membersOfStage(id.slice(0, id.indexOf("/"))).map(startTierOfStage);
  return START_TIERS[Math.min(...tiers.map((t) => START_TIERS.indexOf(t)))]!;
}
/**
 * A stage's start tier. Stages chain only within one (chains.ts): a chain loads its snapshot
 * whole, so popularity-join (what gRPC answers from, `serving`) chained behind the rest of the
 * user path waited for their state too, window's and interest-ranking's cells, before gRPC bound
 * at a restart (bench step 6, 1M users: 6.1 s from the process start to the bind, 1.3 s with
 * popularity-join apart).
 */
export function startTierOfStage(stage: string): StartTier {
  if (stage === "popularity-join" || stage === "fallback") return "serving";
  if (stage === "history" || stage === "covisit" || stage === "collaborative") return stage;
  // The user path but popularity-join (serving, above).
  if ((USER_PATH as readonly string[]).includes(stage)) return "user-path";
  // Its served models are on the shelf (bin/pipeline/model-shelf.ts), which serves them until it
  // runs: its copies of every partition's rows (43 MiB of 270 MiB with 1M users) load last.
  if (stage === "collaborative-trainer") return "trainer";
  return "rest";
}

export function createUnits(
  supervisor: Supervisor,
  instances: Instances,
  /**
   * The partitions whose hops the unit's readers share one consumer for, and this process's
   * tag in its name (sharedInput); absent: a consumer per instance.
   */
  shared?: { partitions: number; tag?: string },
): Units {
  // Every stage instance belongs to a unit of ownership; a unit starts and stops as a whole.
  // At process start the tiers start in order (tierOf), so their snapshots load in that order.
  const starters = new Map<string, { start: () => void; tier: StartTier }[]>();
  const idsOf = new Map<string, string[]>();
  const unitOf = (stage: string, partition: number) =>
    stage === "parse" ? "parse" : `p${partition}`;
  const register: Units["register"] = (unit: string, id: string, start: () => void) => {
    starters.set(unit, [...(starters.get(unit) ?? []), { start, tier: tierOf(id) }]);
    idsOf.set(unit, [...(idsOf.get(unit) ?? []), id]);
  };
  const startUnit = (unit: string, which: StartTier | "all" = "all") => {
    for (const { start, tier } of starters.get(unit) ?? [])
      if (which === "all" || tier === which) start();
  };
  const stopUnit = async (unit: string, graceful: boolean) => {
    const ids = idsOf.get(unit) ?? [];
    await Promise.all(
      ids.map(async (id) => {
        const inst = instances.get(id);
        if (inst && graceful && inst.actor.getStatus() === "running") {
          inst.stopInput();
          await inst.snapshotNow().catch(() => undefined);
        }
        // Also cancels a restart pending in backoff: without the lease it must not come back.
        await supervisor.unsupervise(id);
        instances.delete(id);
      }),
    );
  };
  const epochs = new Map<string, number>();
  const stageIdsOf = (unit: string) =>
    (idsOf.get(unit) ?? []).filter((id) => !id.startsWith("fallback/"));

  return {
    unitOf,
    register,
    names: () => [...starters.keys()],
    has: (unit) => starters.has(unit),
    start: startUnit,
    stop: stopUnit,
    stageIds: stageIdsOf,
    consumer: (stage, partition, subject) => {
      const epoch = epochs.get(unitOf(stage, partition));
      const own = leaseConsumer(consumerBase(stage, partition), epoch);
      const base = shared && sharedInput(subject, shared.partitions, shared.tag);
      if (base === undefined) return own;
      const { name, stale } = leaseConsumer(base, epoch);
      return { ...own, shared: { durable: name, ...(stale ? { stale } : {}) } };
    },
    setEpoch: (unit, epoch) => void epochs.set(unit, epoch),
    weights: () => unitWeights(new Map([...idsOf.keys()].map((u) => [u, stageIdsOf(u)]))),
  };
}

export interface OwnerOptions {
  units: Units;
  instances: Instances;
  stateDb: StateDb;
  nc: NatsConnection;
  replicas: number;
  partitions: number;
  log?: (obj: object, msg: string) => void;
}

/** What this process owns: units started at once, or leases (released by `stop`). */
export interface Owner {
  /** Units started at once (not by leases): serving instances first, the rest once they run. */
  readonly fixedUnits: readonly string[];
  stop(): Promise<void>;
}

export async function takeOwnership(ownership: Ownership, o: OwnerOptions): Promise<Owner> {
  const { units } = o;
  const split = (id: string) => {
    const [stage = "", partition = "0"] = id.split("/");
    return { stage, partition: Number(partition) };
  };
  let leases: LeaseManager | undefined;
  let rounds: ArchiveRounds | undefined;
  // Units started at once (not by leases): serving instances first, the rest once they run.
  let fixedUnits: readonly string[] = [];
  if (ownership.mode === "all") {
    fixedUnits = units.names();
  } else if (ownership.mode === "units") {
    for (const unit of ownership.units)
      if (!units.has(unit))
        throw new Error(
          `unknown unit ${JSON.stringify(unit)} (expected parse or p0..p${o.partitions - 1})`,
        );
    fixedUnits = ownership.units;
  } else {
    const { archive } = ownership;
    const archiveRounds = createArchiveRounds({
      everyMs: ownership.archiveEveryMs,
      owned: () => leases?.owned().keys() ?? [],
      stageIds: (unit) => units.stageIds(unit),
      snapshotPositionOf: (id) => o.instances.get(id)?.snapshotPosition(),
      async copy(id) {
        const { stage, partition } = split(id);
        const snap = await o.stateDb.instance(stage, partition).exportRaw();
        const seq = seqOf(snap);
        return { bytes: seq > 0 ? await archive.put(stage, partition, snap) : 0, seq };
      },
      ...(o.log ? { log: o.log } : {}),
    });
    rounds = archiveRounds;
    leases = await whenJetStreamAnswers(() =>
      createLeaseManager(o.nc, {
        workerId: ownership.workerId,
        units: units.names(),
        weights: units.weights(),
        ttlMs: ownership.leaseTtlMs,
        replicas: o.replicas,
        ...(o.log ? { log: o.log } : {}),
        async onAcquire(unit, epoch) {
          // Restore: whichever snapshot covers more input, ours on disk or the archived one. The
          // archive is a shortcut, not a requirement: if it cannot answer in time (a cluster
          // electing leaders), the unit starts from what it has and replays the rest of its input.
          // The unit's stages are fetched side by side: one wait, not one per stage. The
          // archived copy is downloaded only when it covers more than the one on disk, both
          // sequences read from metadata (the local one was read by loading the whole state, and
          // a copy older than it was downloaded and decoded whole, before it was dropped).
          await Promise.all(
            units.stageIds(unit).map(async (id) => {
              const { stage, partition } = split(id);
              const local = o.stateDb.instance(stage, partition);
              const localSeq = await local.metaSeq();
              const unavailable = (err: unknown) => {
                o.log?.(
                  { id, err: String(err) },
                  "snapshot archive unavailable: replaying instead",
                );
                return undefined;
              };
              let archived: { seq?: number; bytes: number } | undefined;
              try {
                archived = await withTimeout(archive.about(stage, partition), 5_000);
              } catch (err) {
                unavailable(err);
                return;
              }
              if (archived === undefined) return;
              if (archived.seq !== undefined && archived.seq <= localSeq) return;
              const remote = await withTimeout(
                archive.get(stage, partition),
                downloadTimeoutMs(archived.bytes),
              ).catch(unavailable);
              if (remote && seqOf(remote) > localSeq) await local.importRaw(remote);
            }),
          );
          archiveRounds.forget(unit);
          o.log?.({ unit, worker: ownership.workerId, epoch }, "unit acquired");
          units.setEpoch(unit, epoch);
          units.start(unit);
        },
        async onRevoke(unit, graceful) {
          await units.stop(unit, graceful);
          if (graceful)
            await archiveRounds
              .copyUnit(unit)
              .catch((err: unknown) =>
                o.log?.({ unit, err: String(err) }, "snapshot upload failed"),
              );
          o.log?.({ unit, graceful }, "unit released");
        },
      }),
    );
    await leases.start();
    archiveRounds.start();
  }

  return {
    fixedUnits,
    async stop() {
      // No more rounds; workers hand their units over: snapshot, upload, release the leases.
      await rounds?.stop();
      await leases?.stop();
    },
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
