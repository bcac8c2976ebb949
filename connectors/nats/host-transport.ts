import type { NatsConnection } from "nats";
import type { HostTransport } from "../../actors/host/index.js";
import { createJetStreamPublisher } from "./publisher.js";
import { createSharedSources } from "./shared-source.js";
import { deleteConsumers, openDurableSource } from "./source.js";

/**
 * The stage host's transport on NATS JetStream: inputs are durable pull consumers re-created at
 * the snapshot's sequence (source.ts), one for every instance of this process that reads the
 * same partition's hops (shared-source.ts, SourceOptions.shared); outputs go through the acked
 * publisher (publisher.ts).
 */
export function natsHostTransport(nc: NatsConnection): HostTransport {
  const shared = createSharedSources(
    (o) => openDurableSource(nc, o),
    (stream, names, match) => deleteConsumers(nc, stream, names, match),
  );
  return {
    maxPayload: () => nc.info?.max_payload,
    openSource: (o) =>
      o.shared ? shared.open({ ...o, shared: o.shared }) : openDurableSource(nc, o),
    createPublisher: (o) => createJetStreamPublisher(nc, o),
  };
}
