import type { NatsConnection } from "nats";
import { createStageInstance, type PoisonLedger } from "../../actors/host/index.js";
import type { HostDeps, HostTransport, InputMessage } from "../../actors/host/index.js";
import { natsHostTransport } from "../../connectors/nats/host-transport.js";
import type { StateDb } from "../../state/index.js";

/**
 * A raw-input stage instance "probe/0" on stream IN (subjects `in.>`) over a real NATS
 * connection and LevelDB, snapshotting only when asked: the host under test, with `handle` as
 * its whole stage logic. `o`: another stage name, a transport in place of the connection's,
 * metrics, the consumer (HostDeps.consumer).
 */
export function probeStage(
  nc: NatsConnection,
  db: StateDb,
  handle: (m: InputMessage) => void = () => undefined,
  o: {
    stage?: string;
    transport?: HostTransport;
    metrics?: HostDeps["metrics"];
    consumer?: HostDeps["consumer"];
  } = {},
) {
  const stage = o.stage ?? "probe";
  return createStageInstance(
    {
      stage,
      partition: 0,
      stream: "IN",
      subject: "in.>",
      input: "raw",
      batching: "per-input",
      create: () => ({ handle }),
    },
    {
      transport: o.transport ?? natsHostTransport(nc),
      snapshots: db.instance(stage, 0),
      snapshotIntervalMs: 600_000,
      snapshotEveryMessages: 1_000_000,
      maxAttempts: 3,
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.consumer ? { consumer: o.consumer } : {}),
    },
    new Map() as PoisonLedger,
  );
}
