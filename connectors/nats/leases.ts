import { createHash, randomUUID } from "node:crypto";
import type { KV, NatsConnection, NatsError } from "nats";
import { liveKeys } from "./topology.js";

/**
 * Partition ownership through NATS KV leases (nats-server 2.9 has no pinned consumers).
 *
 * - A lease is a key per unit in the bucket `reco_leases`, whose TTL is the lease time: an owner
 *   renews every ttl/3 with a compare-and-set on the revision it holds (`kv.update(k, v, rev)`).
 *   A renewal refused because the revision moved means someone else holds it (or it expired): the
 *   unit is revoked at once, unless the key still carries this manager's token (a renewal of ours
 *   landed but its answer was lost, as when a NATS node dies mid-request), then we adopt the new
 *   revision. A renewal that gets no answer (a cluster electing leaders) is retried: the unit
 *   keeps running until its last confirmed renewal is `ttl * 0.9` old, because the key cannot
 *   expire before then. An owner that dies stops renewing and its key expires with the bucket TTL.
 * - Renewals run on their own timer, never behind a claim, a release or a slow `onAcquire`
 *   (restoring a snapshot from the archive can take seconds on a cluster that is electing).
 * - Claims are `kv.create`, which succeeds only when no live lease exists, so two workers never
 *   hold a unit at once; the revision is the lease's epoch (fencing token).
 * - Live workers announce themselves in `reco_workers` (same TTL). Each unit has a preferred
 *   owner (placeUnits: rendezvous hashing over the live workers, bounded by each worker's share
 *   of the units' weights): a worker claims the free units it prefers and releases (drain and
 *   snapshot with the lease still renewed, then delete the key) the units another live worker
 *   prefers, so the work spreads evenly and units move little when workers join and leave. A
 *   free unit whose preferred worker does not claim it within two renew periods may be claimed
 *   by anyone.
 */
export interface LeaseManagerOptions {
  workerId: string;
  /** Units of ownership, e.g. "parse", "p0" .. "p7". */
  units: string[];
  /**
   * What each unit costs relative to the others (placeUnits), e.g. its estimated CPU per event;
   * 1 when absent. Every worker must be given the same weights.
   */
  weights?: ReadonlyMap<string, number>;
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
  /** Random per manager: tells this process's writes from a restarted worker's with the same id. */
  token: string;
  since: number;
}

/** One unit held: the revision we own and when the write that confirmed it was sent. */
interface Held {
  rev: number;
  confirmedAt: number;
  /** The renewal in flight, if any. */
  renewing: Promise<void> | undefined;
}

/** The server refused a compare-and-set: the key's revision is not the one we hold. */
const isRevisionConflict = (err: unknown) =>
  (err as Partial<NatsError>)?.api_error?.err_code === 10071 ||
  /wrong last sequence/i.test(String((err as Error)?.message ?? err));

/** Rendezvous (highest random weight) hashing: the live worker with the highest score wins. */
export function preferredOwner(unit: string, workers: readonly string[]): string | undefined {
  return rendezvousOrder(unit, workers)[0];
}

/** The workers in the order a unit prefers them (rendezvous hashing: highest score first). */
function rendezvousOrder(unit: string, workers: readonly string[]): string[] {
  return workers
    .map((w) => ({ w, score: createHash("sha1").update(`${unit}\u0000${w}`).digest("hex") }))
    .sort((a, b) => (a.score === b.score ? (a.w < b.w ? -1 : 1) : a.score > b.score ? -1 : 1))
    .map((x) => x.w);
}

/**
 * Each unit's owner among `workers`: rendezvous hashing with bounded loads. Units go heaviest
 * first (then by name) to the first worker in their rendezvous order whose load stays within an
 * even share of all the weights, or, where none has room, to the least loaded. A function of
 * the units, their weights and the set of workers only, so every worker computes the same
 * placement. A join or a leave moves a few more units than plain rendezvous hashing would (the
 * shares change), but that spread units by count and at random: with the collaborative trainer
 * in p0 and parse apart, two workers held 193 and 124 µs of estimated CPU per event (bench step
 * 8: one worker 85% busy, the other 55%). Workers of versions that place differently (by count
 * and by weight) disagree on some units, which move back and forth between them until every
 * worker runs one version.
 */
export function placeUnits(
  units: readonly string[],
  workers: readonly string[],
  weights?: ReadonlyMap<string, number>,
): Map<string, string> {
  const placed = new Map<string, string>();
  if (workers.length === 0) return placed;
  const weight = (u: string) => weights?.get(u) ?? 1;
  const share = (units.reduce((n, u) => n + weight(u), 0) / workers.length) * (1 + 1e-9);
  const load = new Map(workers.map((w) => [w, 0]));
  const order = [...units].sort((a, b) => weight(b) - weight(a) || (a < b ? -1 : a > b ? 1 : 0));
  for (const u of order) {
    const ranked = rendezvousOrder(u, workers);
    const w =
      ranked.find((x) => load.get(x)! + weight(u) <= share) ??
      ranked.reduce((best, x) => (load.get(x)! < load.get(best)! ? x : best));
    load.set(w, load.get(w)! + weight(u));
    placed.set(u, w);
  }
  return placed;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export async function createLeaseManager(
  nc: NatsConnection,
  o: LeaseManagerOptions,
): Promise<LeaseManager> {
  // A request that gets no answer within a renew period is retried rather than awaited longer.
  const timeout = Math.min(5_000, Math.max(1_000, Math.floor(o.ttlMs / 3)));
  const js = nc.jetstream({ timeout });
  const leases: KV = await js.views.kv(LEASE_BUCKET, {
    history: 1,
    ttl: o.ttlMs,
    replicas: o.replicas ?? 1,
    timeout,
  });
  const members: KV = await js.views.kv(MEMBER_BUCKET, {
    history: 1,
    ttl: o.ttlMs,
    replicas: o.replicas ?? 1,
    timeout,
  });
  const now = o.now ?? Date.now;
  const token = randomUUID();
  const renewEveryMs = Math.max(50, Math.floor(o.ttlMs / 3));
  /** A lease not confirmed for this long may expire on the server: stop using it. */
  const trustMs = Math.floor(o.ttlMs * 0.9);
  const held = new Map<string, Held>();
  const freeSince = new Map<string, number>();
  /** Per unit, acquire and revoke callbacks run one after another, in the order asked. */
  const unitOps = new Map<string, Promise<void>>();
  let claimTimer: NodeJS.Timeout | undefined;
  let renewTimer: NodeJS.Timeout | undefined;
  let running = false;
  let busy: Promise<void> = Promise.resolve();

  const value = () =>
    enc.encode(JSON.stringify({ owner: o.workerId, token, since: now() } satisfies LeaseValue));
  const ours = (data: Uint8Array) => {
    try {
      return (JSON.parse(dec.decode(data)) as Partial<LeaseValue>).token === token;
    } catch {
      return false;
    }
  };

  const queue = (unit: string, op: () => Promise<void>) => {
    const next = (unitOps.get(unit) ?? Promise.resolve())
      .then(op)
      .catch((err: unknown) => o.log?.({ unit, err: String(err) }, "lease callback failed"));
    unitOps.set(unit, next);
    return next;
  };

  /** Stops a unit at once: its lease is lost or may be (not renewed in time). */
  const revoke = (unit: string, graceful: boolean) => {
    held.delete(unit);
    return queue(unit, () => o.onRevoke(unit, graceful));
  };

  /**
   * Hands a unit over: drains it (onRevoke, graceful) while its lease is still renewed, then
   * deletes the key. The key used to be left to expire during the drain: a drain longer than the
   * lease (snapshots and the archive upload on a cluster electing leaders, 15 s seen) let the next
   * owner start the unit beside it, and the two incarnations' consumers (one durable name per
   * instance) took each other's deliveries: one stalled for ack_wait (60 s) in the cluster test.
   */
  const release = async (unit: string) => {
    const h = held.get(unit);
    if (h === undefined) return;
    await queue(unit, () => o.onRevoke(unit, true));
    if (held.get(unit) !== h) return; // lost meanwhile, and so revoked already
    held.delete(unit);
    await h.renewing;
    await leases.delete(unit, { previousSeq: h.rev }).catch(() => undefined);
  };

  /** Takes a unit whose key we just wrote (revision `rev`, write sent at `sentAt`). */
  const acquire = (unit: string, rev: number, sentAt: number) => {
    const mine: Held = { rev, confirmedAt: sentAt, renewing: undefined };
    held.set(unit, mine);
    freeSince.delete(unit);
    void queue(unit, async () => {
      // Lost before it started. Not a check of the revision: renewals move it while the start
      // waits its turn (behind a slow stop of the unit), and a unit held but never started
      // stayed so for good (the cluster test's stall: parse taken back after a NATS node died).
      if (held.get(unit) !== mine) return;
      try {
        await o.onAcquire(unit, rev);
      } catch (err) {
        o.log?.({ unit, err: String(err) }, "acquire failed: releasing");
        const h = held.get(unit);
        held.delete(unit);
        if (h) await leases.delete(unit, { previousSeq: h.rev }).catch(() => undefined);
      }
    });
  };

  const renewOne = async (unit: string, h: Held) => {
    const sentAt = now();
    try {
      const rev = await leases.update(unit, value(), h.rev);
      if (held.get(unit) === h) {
        h.rev = rev;
        h.confirmedAt = sentAt;
      } else {
        // Given up while the answer was on its way: free the key for the next owner now.
        await leases.delete(unit, { previousSeq: rev }).catch(() => undefined);
      }
    } catch (err) {
      if (held.get(unit) !== h) return;
      if (!isRevisionConflict(err)) {
        o.log?.({ unit, err: String(err) }, "lease renewal got no answer: retrying");
        return;
      }
      const entry = await leases.get(unit).catch(() => undefined);
      if (held.get(unit) !== h) return;
      if (entry === undefined) return; // no answer either: retry at the next renewal
      if (entry !== null && entry.operation === "PUT" && ours(entry.value)) {
        h.rev = entry.revision; // our earlier renewal landed; its answer was lost
        return;
      }
      o.log?.({ unit, err: String(err) }, "lease lost: stopping the unit");
      await revoke(unit, false);
    }
  };

  const renewAll = () => {
    const t = now();
    for (const [unit, h] of held) {
      if (t - h.confirmedAt > trustMs) {
        o.log?.(
          { unit, unconfirmedMs: t - h.confirmedAt },
          "lease not renewed in time: stopping the unit",
        );
        void revoke(unit, false);
        continue;
      }
      if (h.renewing) continue;
      h.renewing = renewOne(unit, h).finally(() => (h.renewing = undefined));
    }
  };

  const jsm = await nc.jetstreamManager({ timeout, checkAPI: false });
  /** The workers with a live membership key (read without a consumer: see liveKeys). */
  const liveWorkers = async (): Promise<string[]> => {
    const ws = [...(await liveKeys(jsm, members, MEMBER_BUCKET)).keys()];
    if (!ws.includes(o.workerId)) ws.push(o.workerId);
    return ws.sort();
  };

  /** Claims what we prefer (or what stayed free too long), releases what another worker prefers. */
  const pass = async () => {
    await members.put(o.workerId, value());
    const workers = await liveWorkers();
    const placement = placeUnits(o.units, workers, o.weights);
    for (const unit of o.units) {
      const preferred = placement.get(unit);
      const mine = held.get(unit);
      if (mine) {
        if (preferred !== o.workerId && preferred !== undefined) {
          // Hand over only to a live worker; it claims once the key is gone.
          o.log?.({ unit, to: preferred }, "releasing unit to its preferred worker");
          await release(unit);
        }
        continue;
      }
      const entry = await leases.get(unit);
      if (entry && entry.operation === "PUT") {
        freeSince.delete(unit);
        // Ours from a claim whose answer was lost: confirm it with a renewal, then take it.
        if (!ours(entry.value)) continue;
        const sentAt = now();
        const rev = await leases.update(unit, value(), entry.revision).catch(() => undefined);
        if (rev !== undefined) acquire(unit, rev, sentAt);
        continue;
      }
      if (!freeSince.has(unit)) freeSince.set(unit, now());
      const waited = now() - (freeSince.get(unit) ?? now());
      if (preferred !== o.workerId && waited < (2 * o.ttlMs) / 3) continue;
      const sentAt = now();
      const rev = await leases.create(unit, value()).catch(() => undefined); // taken: fine
      if (rev !== undefined) acquire(unit, rev, sentAt);
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
      claimTimer = setInterval(() => void tick(), renewEveryMs);
      renewTimer = setInterval(renewAll, renewEveryMs);
    },
    owned: () => new Map([...held].map(([unit, h]) => [unit, h.rev])),
    async tick() {
      renewAll();
      await Promise.all([...held.values()].map((h) => h.renewing));
      await tick();
      await Promise.all([...unitOps.values()]);
    },
    async stop() {
      if (!running) return;
      running = false;
      clearInterval(claimTimer);
      await busy;
      await Promise.all([...unitOps.values()]);
      // Renewals go on while units are handed over one by one (each drains and snapshots), so
      // neither the one draining nor those waiting their turn expire under a worker running them.
      for (const unit of [...held.keys()]) await release(unit);
      clearInterval(renewTimer);
      await members.delete(o.workerId).catch(() => undefined);
    },
  };
}
