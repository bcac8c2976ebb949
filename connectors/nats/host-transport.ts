import type { NatsConnection } from "nats";
import type { HostTransport, InputSource, SourceOptions } from "../../actors/host/index.js";
import { createJetStreamPublisher } from "./publisher.js";
import { createSharedSources } from "./shared-source.js";
import { consumerPending, deleteConsumers, openDurableSource } from "./source.js";

/**
 * The stage host's transport on NATS JetStream: inputs are durable pull consumers re-created at
 * the snapshot's sequence (source.ts), one for every instance of this process that reads the
 * same partition's hops (shared-source.ts, SourceOptions.shared); outputs go through the acked
 * publisher (publisher.ts).
 */
export function natsHostTransport(nc: NatsConnection): HostTransport {
  const durable = async (o: SourceOptions): Promise<InputSource> => {
    const messages = await openDurableSource(nc, o);
    return {
      close: () => messages.close(),
      closed: () => messages.closed(),
      pending: () => consumerPending(nc, o.stream, o.durable),
    };
  };
  const shared = createSharedSources(durable, (stream, names, match) =>
    deleteConsumers(nc, stream, names, match),
  );
  return {
    maxPayload: () => nc.info?.max_payload,
    openSource: (o) => (o.shared ? shared.open({ ...o, shared: o.shared }) : durable(o)),
    createPublisher: (o) => createJetStreamPublisher(nc, o),
  };
}
