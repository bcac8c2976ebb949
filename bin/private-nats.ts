import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { startEmbeddedNats, type EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { STREAMS } from "../connectors/nats/topology.js";
import { freeBytes, NATS_MIN_FREE_BYTES } from "./nats-keeper.js";

/**
 * Starts the private nats-server of `reco start` with its credentials (below): returns it and
 * the URL the engine connects with (its credentials inside: never log it; log `server.url`).
 */
export async function startPrivateNats(o: {
  dataDir: string;
  port: number;
  monitorPort?: number | undefined;
}): Promise<{ server: EmbeddedNats; engineUrl: string }> {
  const storeDir = join(o.dataDir, "nats");
  await mkdir(storeDir, { recursive: true });
  // Started without room, nats-server comes up without its streams and stays so: refuse.
  const free = freeBytes(storeDir);
  if (free < NATS_MIN_FREE_BYTES)
    throw new Error(
      `the disk of ${storeDir} is full (${(free / 2 ** 20).toFixed(1)} MiB free; the private nats-server needs ${NATS_MIN_FREE_BYTES / 2 ** 20} MiB to load its streams): free some space and start again`,
    );
  const creds = await ensureNatsCredentials(o.dataDir);
  const conf = join(storeDir, "auth.conf");
  await writeServerAuthConfig(conf, creds);
  const server = await startEmbeddedNats({
    port: o.port,
    storeDir,
    monitorPort: o.monitorPort,
    detached: true,
    extraArgs: ["-c", conf],
  });
  await writePublisherFile(o.dataDir, server.url, creds);
  return { server, engineUrl: withCredentials(server.url, creds.engine) };
}

function withCredentials(url: string, c: { user: string; pass: string }): string {
  const e = encodeURIComponent;
  return url.replace(/^(\w+:\/\/)/, `$1${e(c.user)}:${e(c.pass)}@`);
}

/**
 * Credentials of the private nats-server (any local process could write a popularity
 * row or an idle marker). Generated at the first start and kept in DATA_DIR, so publishers keep
 * working across restarts:
 *
 * - `engine`: reco-stream itself (the main and parse processes), allowed everything;
 * - `publisher`: event publishers and `reco replay`, allowed to publish `events.<type>` (not the
 *   engine's `events._idle`) and `items.upsert`, receive replies (PubAcks) on `_INBOX.>`, and read, not write, what
 *   `reco replay` reports: stream and consumer info, and the late and dead-letter streams. The
 *   engine's subjects (`reco.*`, `$KV.*`, the idle subject) and every change to streams,
 *   buckets and the engine's consumers are the engine's alone.
 *
 * `DATA_DIR/nats-publisher.json` holds what a publisher passes to nats.js `connect()` as it is:
 * `{ "servers", "user", "pass" }` (other clients take `nats://user:pass@host:port`).
 */
export interface NatsCredentials {
  engine: { user: string; pass: string };
  publisher: { user: string; pass: string };
}

/** What a publisher connects with (nats.js ConnectionOptions). */
export interface PublisherConnection {
  servers: string;
  user: string;
  pass: string;
}

export const credentialsFile = (dataDir: string) => join(dataDir, "nats-credentials.json");
export const publisherFile = (dataDir: string) => join(dataDir, "nats-publisher.json");

/**
 * What `publisher` may publish: events, item upserts (a catalogue feed), and the read-only
 * JetStream API `reco replay` uses.
 */
const PUBLISHER_MAY_PUBLISH = [
  "events.*",
  "items.upsert",
  "$JS.API.INFO",
  "$JS.API.STREAM.INFO.*",
  "$JS.API.CONSUMER.LIST.*",
  "$JS.API.CONSUMER.INFO.*.*",
  // Its own ephemeral readers of the late and dead-letter streams (the replay's report).
  ...[STREAMS.late, STREAMS.dlq].flatMap((s) => [
    `$JS.API.CONSUMER.CREATE.${s}`,
    `$JS.API.CONSUMER.CREATE.${s}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${s}.*`,
    `$JS.API.CONSUMER.DELETE.${s}.*`,
  ]),
];

const secret = () => randomBytes(24).toString("hex");

/** Reads the credentials kept in DATA_DIR, or makes and keeps new ones (owner-only file). */
export async function ensureNatsCredentials(dataDir: string): Promise<NatsCredentials> {
  const file = credentialsFile(dataDir);
  const kept = await readFile(file, "utf8").then(
    (t) => JSON.parse(t) as NatsCredentials,
    () => undefined,
  );
  if (kept?.engine?.pass && kept.publisher?.pass) return kept;
  const fresh: NatsCredentials = {
    engine: { user: "reco-engine", pass: secret() },
    publisher: { user: "publisher", pass: secret() },
  };
  await writeOwnerOnly(file, `${JSON.stringify(fresh, null, 2)}\n`);
  return fresh;
}

/**
 * The nats-server configuration that enforces them (`-c`; port, store and JetStream stay on the
 * command line). Passwords are hex, so they need no quoting.
 */
export async function writeServerAuthConfig(file: string, creds: NatsCredentials): Promise<void> {
  const { engine, publisher } = creds;
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(", ")}]`;
  const conf = `# Written by reco-stream at every start from ${credentialsFile("DATA_DIR")}.
authorization {
  users = [
    { user: ${JSON.stringify(engine.user)}, password: ${JSON.stringify(engine.pass)} }
    {
      user: ${JSON.stringify(publisher.user)}, password: ${JSON.stringify(publisher.pass)}
      permissions: {
        publish: {
          allow: ${list(PUBLISHER_MAY_PUBLISH)}
          deny: ${list(["events._idle"])}
        }
        subscribe: { allow: ${list(["_INBOX.>"])} }
      }
    }
  ]
}
`;
  await writeOwnerOnly(file, conf);
}

/** Writes DATA_DIR/nats-publisher.json for the server's current URL. */
export async function writePublisherFile(
  dataDir: string,
  url: string,
  creds: NatsCredentials,
): Promise<void> {
  const c: PublisherConnection = { servers: url, ...creds.publisher };
  await writeOwnerOnly(publisherFile(dataDir), `${JSON.stringify(c, null, 2)}\n`);
}

/**
 * The publisher's connection to the private server of DATA_DIR (`./data` unless set), as a URL
 * with the credentials in it (connectNats takes them out), or undefined if there is none.
 */
export function publisherUrl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  try {
    const file = publisherFile(resolve(env.DATA_DIR ?? "./data"));
    const c = JSON.parse(readFileSync(file, "utf8")) as PublisherConnection;
    return withCredentials(c.servers, c);
  } catch {
    return undefined;
  }
}

async function writeOwnerOnly(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
  await chmod(file, 0o600); // writeFile's mode applies only when it creates the file
}
