import type { NatsConnection } from "nats";
import type { Logger } from "pino";
import type { StateDb } from "../state/index.js";
import { openSnapshotArchive } from "../state/archive.js";
import { whenJetStreamAnswers } from "../connectors/nats/topology.js";
import type { PipelineDeps } from "./pipeline/pipeline.js";
import {
  carrySnapshotsOver,
  USER_PATH,
  userPathBefore,
  userPathInstances,
} from "./pipeline/plan-snapshots.js";
import type { RoleConfig } from "./role-config.js";
import { ConfigError, type AppConfig } from "./config.js";
import { moveParseSnapshot } from "./parse-process-stores.js";
import { startTierOfStage } from "./pipeline/units.js";

/**
 * Where a start's stages run (this process, the parse process, or a worker's leases), and
 * their snapshots put where they run before any stage loads one.
 */

/**
 * Puts every snapshot in the store of the process that runs its stage now (`inChild`: the parse
 * process's stages), and the user path's in the chains it runs as now.
 */
export async function placeSnapshots(
  cfg: AppConfig,
  inChild: ReadonlySet<string>,
  stateDb: StateDb,
  log: Logger,
): Promise<void> {
  // The user path's instances here and in the parse process: chains of the stages each runs.
  const userPath = userPathInstances(
    cfg.pipeline.chaining ?? true,
    (stage) => (inChild.has(stage) ? "child" : "main"),
    startTierOfStage,
  );
  const wanted = userPath.map((i) => i.stage);
  const before = await userPathBefore(cfg.dataDir);
  const replanned = before.join(",") !== wanted.join(",");
  const pathStages = new Set<string>([...before, ...wanted]);
  await moveParseSnapshot(
    stateDb,
    cfg.dataDir,
    new Set([
      ...[...inChild].filter((s) => !(USER_PATH as readonly string[]).includes(s)),
      ...userPath.filter((i) => i.place === "child").map((i) => i.stage),
    ]),
    cfg.pipeline.partitions,
    {
      bringBack: (s) => replanned && pathStages.has(s),
      whileHere: () =>
        carrySnapshotsOver(stateDb, cfg.dataDir, wanted, cfg.pipeline.partitions, (obj, msg) =>
          log.warn(obj, msg),
        ),
    },
  );
}

/**
 * The stages this process runs: all of them; with a parse process (`parseApart`), those of every
 * unit it does not run (`inChild`); for a worker, those its leases grant.
 */
export async function stageOwnership(
  cfg: AppConfig,
  role: "start" | "worker",
  parseApart: boolean,
  inChild: ReadonlySet<string>,
  nc: NatsConnection,
  roleConfig: RoleConfig | undefined,
): Promise<PipelineDeps["ownership"]> {
  if (role === "worker") {
    if (!roleConfig)
      throw new ConfigError("the worker role needs its settings (WORKER_ID, LEASE_TTL_MS)");
    return {
      mode: "leases",
      workerId: roleConfig.workerId,
      leaseTtlMs: roleConfig.leaseTtlMs,
      archive: await whenJetStreamAnswers(() =>
        openSnapshotArchive(nc, { replicas: cfg.pipeline.replicas }),
      ),
      archiveEveryMs: roleConfig.archiveIntervalMs,
    };
  }
  return parseApart
    ? {
        mode: "units",
        units: Array.from({ length: cfg.pipeline.partitions }, (_, p) => `p${p}`),
        stages: (stage) => !inChild.has(stage),
      }
    : { mode: "all" };
}
