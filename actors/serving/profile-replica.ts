import type { ProfileRecord } from "../stages/index.js";

/**
 * A read replica of every partition's user profiles, for a gateway that runs no stages: it
 * follows `reco.interest-ranking.*` (the input of popularity-join) with an ordered consumer and
 * keeps the latest profile per user. With the broadcast popularity table it answers any user,
 * so serving goes on while partitions move between workers (unlike Kafka Streams' interactive
 * queries during a rebalance); how far behind it may be is reported with each answer.
 */
export interface ProfileReplica {
  profile(user: string): ProfileRecord | undefined;
  /** True once the replica has caught up with the stream at least once. */
  readonly caughtUp: boolean;
  /** Upper bound on staleness (ms): 0 while caught up, else the time since it last was. */
  stalenessMs(): number;
  readonly size: number;
}

export function createProfileReplica(
  now: () => number = Date.now,
  /** Called with the user of every profile applied (a split `reco start`'s kept answers). */
  onChange?: (user: string) => void,
): ProfileReplica & {
  /**
   * Takes a user's profile from a hop covering input positions up to `upTo` (its partition's
   * interest-ranking input). A profile from a hop at or below the one the user's current
   * profile came from is older and is skipped: a restarted interest-ranking replays from its
   * snapshot, and its replayed hops (other batch boundaries, so other ids) are stored after
   * newer ones; applied in stream order, they put older profiles back for good (answers stayed
   * stale in the cluster test after the NATS node kill). A profile from the same `upTo` is
   * applied: one hop may carry several profiles of a user, in order (a batch that spans several
   * watermark steps, as after a wait for a hop stored late), and the last is the newest; a
   * replayed hop that ends at the same position ends with the same profile. Without `upTo`:
   * always applied.
   */
  apply(p: ProfileRecord, upTo?: number): void;
  noteCaughtUp(pending: number): void;
} {
  const profiles = new Map<string, ProfileRecord>();
  /** Per user, the `upTo` of the hop its profile came from (kept after a delete, too). */
  const from = new Map<string, number>();
  let caughtUp = false;
  let lastCaughtUp = 0;
  let pendingNow = 1;
  return {
    profile: (u) => profiles.get(u),
    get caughtUp() {
      return caughtUp;
    },
    get size() {
      return profiles.size;
    },
    stalenessMs: () => (pendingNow === 0 ? 0 : caughtUp ? now() - lastCaughtUp : Infinity),
    apply(p, upTo) {
      if (upTo !== undefined) {
        if (upTo < (from.get(p.u) ?? -Infinity)) return;
        from.set(p.u, upTo);
      }
      if (p.top.length === 0 && p.pur.length === 0) profiles.delete(p.u);
      else profiles.set(p.u, p);
      onChange?.(p.u);
    },
    noteCaughtUp(pending) {
      pendingNow = pending;
      if (pending === 0) {
        caughtUp = true;
        lastCaughtUp = now();
      }
    },
  };
}
