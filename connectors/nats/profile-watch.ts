import type { ConsumerMessages, NatsConnection } from "nats";
import { AckPolicy, DeliverPolicy } from "nats";
import { endOnConsumerLoss } from "./source.js";
import { STREAMS } from "./topology.js";
import { createActor, type Actor } from "../../runtime/index.js";
import { decodeEnvelope } from "../../actors/host/index.js";
import type { ProfileRecord } from "../../actors/stages/index.js";
import type { createProfileReplica } from "../../actors/serving/index.js";

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
