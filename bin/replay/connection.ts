import type { NatsConnection } from "nats";
import { connectNats } from "../../connectors/nats/connection.js";
import { PublisherClosedError, PublishTimeoutError } from "../../connectors/nats/publisher.js";
import { publisherUrl } from "../private-nats.js";

/**
 * A replay's side of NATS: which server it talks to, and the one line it ends with when that
 * server refuses it or stops acknowledging. A replay is often run by hand against an engine
 * started elsewhere, so these lines name the cause and the next step rather than a stack trace.
 */

/**
 * A publish's deadline: each attempt waits this long for its ack, and is sent again up to
 * {@link PUBLISH_RETRIES} times with the same id (never stored twice), so a replay into a
 * stopped or stalled server ends within about 15 s of its last ack.
 */
export const PUBLISH_TIMEOUT_MS = 5_000;
export const PUBLISH_RETRIES = 2;

/**
 * NATS_URL, else the private server of `reco start` in DATA_DIR with the publisher credentials
 * it wrote there (nats-publisher.json), else the default port without credentials.
 */
export function defaultNatsUrl(env: NodeJS.ProcessEnv = process.env): string {
  return env.NATS_URL ?? publisherUrl(env) ?? `nats://127.0.0.1:${env.NATS_PORT ?? 4222}`;
}

/** A NATS URL without the credentials it may carry. */
export const withoutCredentials = (servers: string) => servers.replace(/\/\/[^/,\s]*@/g, "//");

/**
 * Connects as `reco-replay`. A refused connection says whose credentials were offered (those in
 * `credentialsFrom`, or none) and which DATA_DIR to set, since that is what a user gets wrong.
 */
export async function connect(servers: string, credentialsFrom?: string): Promise<NatsConnection> {
  try {
    return await connectNats({ servers, name: "reco-replay" });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const where = withoutCredentials(servers);
    if (/authorization/i.test(why))
      throw new Error(
        credentialsFrom === undefined
          ? `NATS at ${where} refused the connection (${why}): no credentials for the ` +
              `engine's NATS in ${process.env.DATA_DIR ?? "./data"}: set DATA_DIR to the engine's`
          : `NATS at ${where} refused the credentials in ${credentialsFrom} (${why}): set ` +
              `DATA_DIR to the data folder of the engine that runs there`,
        { cause: err },
      );
    throw new Error(`cannot connect to NATS at ${where}: ${why}`, { cause: err });
  }
}

/**
 * The one line a failed publish ends a replay with: the cause, how far it got, and how to resume.
 */
export function publishFailure(err: unknown, servers: string, stored: number): Error {
  const where = withoutCredentials(servers);
  const cause =
    err instanceof PublishTimeoutError
      ? `stopped acknowledging events (none within ${PUBLISH_TIMEOUT_MS / 1000} s, ` +
        `${PUBLISH_RETRIES + 1} attempts): the server stopped, stalled or is unreachable`
      : err instanceof PublisherClosedError
        ? "closed the connection"
        : `refused an event (${err instanceof Error ? err.message : String(err)})`;
  return new Error(
    `NATS at ${where} ${cause}; ${stored} events were stored. Re-run the same command to ` +
      `resume: events already stored are known by their ids and counted once (docs/REPLAY.md)`,
    { cause: err },
  );
}
