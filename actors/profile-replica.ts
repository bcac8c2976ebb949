import type { ConsumerMessages, NatsConnection } from "nats";
import { AckPolicy, DeliverPolicy } from "nats";
import { endOnConsumerLoss } from "../connectors/nats/source.js";
import { createActor, type Actor } from "../runtime/index.js";
import { STREAMS } from "../connectors/nats/topology.js";
import { decodeEnvelope } from "./host.js";
import type { ProfileRecord } from "./interest-ranking.js";

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

export function createProfileReplica(now: () => number = Date.now): ProfileReplica & {
  /**
   * Takes a user's profile from a hop covering input positions up to `upTo` (its partition's
   * interest-ranking input). A profile from a hop at or below the one the user's current
   * profile came from is older and is skipped: a restarted interest-ranking replays from its
   * snapshot, and its replayed hops (other batch boundaries, so other ids) are stored after
   * newer ones; applied in stream order, they put older profiles back for good (answers stayed
   * stale in the cluster test after the NATS node kill). Without `upTo`: always applied.
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
        if (upTo <= (from.get(p.u) ?? -Infinity)) return;
        from.set(p.u, upTo);
      }
      if (p.top.length === 0 && p.pur.length === 0) profiles.delete(p.u);
      else profiles.set(p.u, p);
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

/** The actor that feeds a replica from JetStream; restarted by its supervisor if the feed dies. */
export function createProfileReplicaActor(
  nc: NatsConnection,
  replica: ReturnType<typeof createProfileReplica>,
): Actor<{ data: Uint8Array; pending: number }> {
  let iter: ConsumerMessages | undefined;
  let target = 0;
  return createActor({
    id: "profile-replica",
    behavior: {
      async start(ctx) {
        // Caught up once past the last profile that existed when we started. (An ordered
        // consumer's info() never answered here, so the target comes from the stream.)
        const jsm = await nc.jetstreamManager();
        const info = await jsm.streams.info(STREAMS.hops, {
          subjects_filter: "reco.interest-ranking.*",
        });
        target = 0;
        for (const subject of Object.keys(info.state.subjects ?? {})) {
          const m = await jsm.streams.getMessage(STREAMS.hops, { last_by_subj: subject });
          target = Math.max(target, m.seq);
        }
        if (target === 0) replica.noteCaughtUp(0);
        // An ephemeral pull consumer with 2.9's single filter_subject: the client's ordered
        // consumer hung in consume() against nats-server 2.9.10 (it sends 2.10's filter_subjects).
        const ci = await jsm.consumers.add(STREAMS.hops, {
          filter_subject: "reco.interest-ranking.*",
          deliver_policy: DeliverPolicy.All,
          ack_policy: AckPolicy.None,
          inactive_threshold: 30_000_000_000,
        });
        const consumer = await nc.jetstream().consumers.get(STREAMS.hops, ci.name);
        iter = await consumer.consume({ max_messages: 256, expires: 5_000 });
        // An ephemeral consumer lives on one server: if that server dies, the consumer is gone.
        // The feed then ends with an error and the actor fails, so the supervisor resubscribes
        // (from the start: profiles are upserts); answers meanwhile report their staleness.
        endOnConsumerLoss(iter, "profile feed", 2, {
          nc,
          stream: STREAMS.hops,
          consumer: ci.name,
        });
        void (async () => {
          try {
            // A gap in the delivery sequence is a message lost in flight (AckPolicy.None: it
            // never comes again): fail, and the supervisor resubscribes from the start.
            let delivered = 0;
            for await (const m of iter!) {
              if (m.info.deliverySequence !== ++delivered)
                throw new Error(`profile feed: delivery ${delivered} lost`);
              ctx.send({ data: m.data, pending: m.seq >= target ? m.info.pending : 1 });
            }
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
      },
      receive(m) {
        const env = decodeEnvelope<ProfileRecord>(m.data);
        for (const p of env.recs) replica.apply(p, env.upTo);
        replica.noteCaughtUp(m.pending);
      },
      stop() {
        void iter?.close();
      },
    },
  });
}
