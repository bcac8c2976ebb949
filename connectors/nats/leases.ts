import { createHash } from "node:crypto";
import type { KV, NatsConnection } from "nats";

/**
 * Partition ownership through NATS KV leases (nats-server 2.9 has no pinned consumers).
 *
 * - A lease is a key per unit in the bucket `reco_leases`, whose TTL is the lease time: an owner
 *   renews every ttl/3 with a compare-and-set on the revision it holds (`kv.update(k, v, rev)`);
 *   a failed renewal means someone else holds it (or it expired): the unit is revoked locally at
 *   once. An owner that dies stops renewing and its key expires with the bucket TTL.
 * - Claims are `kv.create`, which succeeds only when no live lease exists, so two workers never
 *   hold a unit at once; the revision is the lease's epoch (fencing token).
 * - Live workers announce themselves in `reco_workers` (same TTL). Each unit has a preferred
 *   owner by rendezvous hashing over the live workers: a worker claims the free units it prefers
 *   and releases (drain, snapshot, delete) the units another live worker prefers, so units spread
 *   evenly and move as little as possible when workers join and leave. A free unit whose
 *   preferred worker does not claim it within two renew periods may be claimed by anyone.
 */
export interface LeaseManagerOptions {
  workerId: string;
  /** Units of ownership, e.g. "parse", "p0" .. "p7". */
  units: string[];
  /** Lease time; renewals every ttl/3. */
  ttlMs: number;
  replicas?: number;
  /** Start processing a unit; `epoch` is the lease revision. Throwing releases the lease. */
  onAcquire(unit: string, epoch: number): Promise<void>;
  /** Stop processing a unit (drain and snapshot if `graceful`). Must not throw. */
  onRevoke(unit: string, graceful: boolean): Promise<void>;
  log?: (obj: object, msg: string) => void;
  /** Injected time for tests. */
  now?: () => number;
}

export interface LeaseManager {
  start(): Promise<void>;
  /** Units held now, with their epochs. */
  owned(): ReadonlyMap<string, number>;
  /** One pass of the loop (tests call it directly). */
  tick(): Promise<void>;
  /** Revokes every unit gracefully, deletes the leases and the membership. */
  stop(): Promise<void>;
}

export const LEASE_BUCKET = "reco_leases";
export const MEMBER_BUCKET = "reco_workers";

interface LeaseValue {
  owner: string;
  since: number;
}

/** Rendezvous (highest random weight) hashing: the live worker with the highest score wins. */
export function preferredOwner(unit: string, workers: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = "";
  for (const w of workers) {
    const score = createHash("sha1").update(`${unit}\u0000${w}`).digest("hex");
    if (best === undefined || score > bestScore || (score === bestScore && w < best)) {
      best = w;
      bestScore = score;
    }
  }
  return best;
}

const enc = new TextEncoder();

export async function createLeaseManager(
  nc: NatsConnection,
  o: LeaseManagerOptions,
): Promise<LeaseManager> {
  const js = nc.jetstream();
  const leases: KV = await js.views.kv(LEASE_BUCKET, {
    history: 1,
    ttl: o.ttlMs,
    replicas: o.replicas ?? 1,
  });
  const members: KV = await js.views.kv(MEMBER_BUCKET, {
    history: 1,
    ttl: o.ttlMs,
    replicas: o.replicas ?? 1,
  });
  const now = o.now ?? Date.now;
  const held = new Map<string, number>(); // unit -> revision
  const freeSince = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let busy: Promise<void> = Promise.resolve();

  const value = () =>
    enc.encode(JSON.stringify({ owner: o.workerId, since: now() } satisfies LeaseValue));

  const revoke = async (unit: string, graceful: boolean) => {
    held.delete(unit);
    await o.onRevoke(unit, graceful);
  };

  const liveWorkers = async (): Promise<string[]> => {
    const ws: string[] = [];
    for await (const k of await members.keys()) ws.push(k);
    if (!ws.includes(o.workerId)) ws.push(o.workerId);
    return ws.sort();
  };

  const pass = async () => {
    // 1. Renew what we hold; a failed compare-and-set means we lost it.
    for (const [unit, rev] of [...held]) {
      try {
        held.set(unit, await leases.update(unit, value(), rev));
      } catch (err) {
        o.log?.({ unit, err: String(err) }, "lease lost: stopping the unit");
        await revoke(unit, false);
      }
    }
    // 2. Announce ourselves.
    await members.put(o.workerId, value());
    // 3. Claim what we prefer, release what another live worker prefers.
    const workers = await liveWorkers();
    for (const unit of o.units) {
      const preferred = preferredOwner(unit, workers);
      if (held.has(unit)) {
        if (preferred !== o.workerId && preferred !== undefined) {
          const entry = await leases.get(unit);
          // Hand over only to a live worker; it claims once the key is gone.
          o.log?.({ unit, to: preferred }, "releasing unit to its preferred worker");
          const rev = held.get(unit)!;
          await revoke(unit, true);
          if (entry && entry.revision === rev)
            await leases.delete(unit, { previousSeq: rev }).catch(() => undefined);
        }
        continue;
      }
      const entry = await leases.get(unit);
      const free = !entry || entry.operation !== "PUT";
      if (!free) {
        freeSince.delete(unit);
        continue;
      }
      if (!freeSince.has(unit)) freeSince.set(unit, now());
      const waited = now() - (freeSince.get(unit) ?? now());
      if (preferred !== o.workerId && waited < (2 * o.ttlMs) / 3) continue;
      try {
        const rev = await leases.create(unit, value());
        held.set(unit, rev);
        freeSince.delete(unit);
        try {
          await o.onAcquire(unit, rev);
        } catch (err) {
          o.log?.({ unit, err: String(err) }, "acquire failed: releasing");
          held.delete(unit);
          await leases.delete(unit, { previousSeq: rev }).catch(() => undefined);
        }
      } catch {
        // Someone else created it first: fine.
      }
    }
  };

  const tick = () => {
    busy = busy
      .then(pass)
      .catch((err: unknown) => o.log?.({ err: String(err) }, "lease pass failed"));
    return busy;
  };

  return {
    async start() {
      running = true;
      await tick();
      timer = setInterval(() => void tick(), Math.max(50, Math.floor(o.ttlMs / 3)));
    },
    owned: () => held,
    tick,
    async stop() {
      if (!running) return;
      running = false;
      clearInterval(timer);
      await busy;
      for (const [unit, rev] of [...held]) {
        await revoke(unit, true);
        await leases.delete(unit, { previousSeq: rev }).catch(() => undefined);
      }
      await members.delete(o.workerId).catch(() => undefined);
    },
  };
}
