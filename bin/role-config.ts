import { hostname } from "node:os";
import { ConfigError, type AppConfig } from "./config.js";

/** Settings of the split roles (`reco worker`, `reco gateway`), validated like the others. */
export interface RoleConfig {
  /** Stable identity of a worker (a StatefulSet pod name is ideal). */
  workerId: string;
  /** Lease time: a dead worker's partitions move after at most this long. */
  leaseTtlMs: number;
  /** How often a worker copies its snapshots to the object store. */
  archiveIntervalMs: number;
  /** A gateway answers UNAVAILABLE when its replica is further behind than this. */
  maxStalenessMs: number;
  /** A drain that takes longer (NATS gone) is abandoned: the process exits. */
  stopTimeoutMs: number;
}

export const ROLE_SETTINGS = {
  WORKER_ID: "worker identity; default the host name",
  LEASE_TTL_MS: "partition lease time (default 10000)",
  ARCHIVE_INTERVAL_MS: "snapshot copy to the object store (default 30000)",
  MAX_STALENESS_MS: "gateway: largest replica staleness served (default 60000)",
  STOP_TIMEOUT_MS: "longest drain on SIGTERM/Ctrl-C before exiting anyway (default 30000)",
} as const;

export function loadRoleConfig(env: Record<string, string | undefined>): RoleConfig {
  const int = (name: string, def: number, min: number) => {
    const v = env[name];
    if (v === undefined || v === "") return def;
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min)
      throw new ConfigError(
        `${name}=${JSON.stringify(v)} is not valid: expected a whole number of milliseconds from ${min}`,
      );
    return n;
  };
  const workerId = env.WORKER_ID?.trim() || hostname();
  if (!/^[-_a-zA-Z0-9]{1,64}$/.test(workerId))
    throw new ConfigError(
      `WORKER_ID=${JSON.stringify(workerId)} is not valid: expected 1-64 letters, digits, '-' or '_'`,
    );
  return {
    workerId,
    leaseTtlMs: int("LEASE_TTL_MS", 10_000, 1_000),
    archiveIntervalMs: int("ARCHIVE_INTERVAL_MS", 30_000, 1_000),
    maxStalenessMs: int("MAX_STALENESS_MS", 60_000, 0),
    stopTimeoutMs: int("STOP_TIMEOUT_MS", 30_000, 100),
  };
}

/** NATS_URL is required by the split roles: they join a server or cluster run by others. */
export function requireNatsUrl(cfg: AppConfig, role: string): string {
  if (cfg.natsUrl === undefined)
    throw new ConfigError(
      `NATS_URL must be set for 'reco ${role}': workers and gateways join an existing NATS server or cluster`,
    );
  return cfg.natsUrl;
}
