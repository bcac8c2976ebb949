import type { ConsumerMessages, NatsConnection } from "nats";
import { DeliverPolicy } from "nats";
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
  apply(p: ProfileRecord): void;
  noteCaughtUp(pending: number): void;
} {
  const profiles = new Map<string, ProfileRecord>();
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
    apply(p) {
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
  let timer: NodeJS.Timeout | undefined;
  return createActor({
    id: "profile-replica",
    behavior: {
      async start(ctx) {
        const consumer = await nc.jetstream().consumers.get(STREAMS.hops, {
          filterSubjects: "reco.interest-ranking.*",
          deliver_policy: DeliverPolicy.All,
        });
        iter = await consumer.consume({ max_messages: 256 });
        void (async () => {
          try {
            for await (const m of iter!) ctx.send({ data: m.data, pending: m.info.pending });
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        // An empty stream delivers nothing: ask the server how far behind we are.
        const check = async () => {
          try {
            const info = await consumer.info(true);
            if (info.num_pending === 0) replica.noteCaughtUp(0);
          } catch {
            // next time
          }
        };
        await check();
        timer = setInterval(() => void check(), 500);
      },
      receive(m) {
        for (const p of decodeEnvelope<ProfileRecord>(m.data).recs) replica.apply(p);
        replica.noteCaughtUp(m.pending);
      },
      stop() {
        clearInterval(timer);
        void iter?.close();
      },
    },
  });
}
