import type { NatsConnection } from "nats";
import type { HostTransport } from "../../actors/host/index.js";
import { createJetStreamPublisher } from "./publisher.js";
import { openDurableSource } from "./source.js";

/**
 * The stage host's transport on NATS JetStream: inputs are durable pull consumers re-created at
 * the snapshot's sequence (source.ts), outputs go through the acked publisher (publisher.ts).
 */
export function natsHostTransport(nc: NatsConnection): HostTransport {
  return {
    maxPayload: () => nc.info?.max_payload,
    openSource: (o) => openDurableSource(nc, o),
    createPublisher: (o) => createJetStreamPublisher(nc, o),
  };
}
