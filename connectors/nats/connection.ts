import { readFile } from "node:fs/promises";
import {
  connect,
  credsAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
  type TlsOptions,
} from "nats";

export interface ConnectNatsOptions {
  /** One URL or a comma-separated list (`nats://a:4222,nats://b:4222`). */
  servers: string;
  /** Client name, shown by the server's monitoring endpoints. */
  name: string;
  user?: string;
  pass?: string;
  token?: string;
  /** Path to a `.creds` file (JWT + nkey seed). */
  credsFile?: string;
  /** How long the first connection may take, in ms (the client's default: 20 s). */
  timeoutMs?: number;
  /**
   * TLS (PEM file paths; unset fields are left out). Any path set makes TLS required: a server
   * that does not offer TLS is refused rather than spoken to in plaintext. `caFile` verifies the
   * server (system roots otherwise); `certFile` + `keyFile` are the client's for mutual TLS.
   */
  tls?: {
    caFile?: string | undefined;
    certFile?: string | undefined;
    keyFile?: string | undefined;
  };
}

/**
 * Connects to NATS with the settings every reco-stream process uses.
 *
 * - `noAsyncTraces: true`: by default the client builds an extra `Error` per request/publish to
 *   keep the caller's stack for timeouts; measured, that halves JetStream publish throughput
 *   (NATS-NOTES: 10k vs 18k msgs/s). Timeout errors lose the caller's frame; we name the
 *   subject in our own errors instead.
 * - `maxReconnectAttempts: -1`: a worker never gives up on the cluster; an outage is reported
 *   through `nc.status()` and metrics, not by the process exiting.
 * - `reconnectTimeWait: 250` ms: a restarted local server is picked up quickly.
 * - TLS is required when any TLS path is given or any server URL is `tls://`; the client then
 *   never falls back to plaintext.
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const { servers, auth } = splitServerCredentials(options.servers);
  const opts: ConnectionOptions = {
    servers,
    name: options.name,
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
  };
  // Credentials set explicitly (NATS_USER/NATS_PASS, NATS_TOKEN, NATS_CREDS) win over the URL's.
  const explicit =
    options.user !== undefined || options.token !== undefined || options.credsFile !== undefined;
  if (!explicit && auth?.pass !== undefined) {
    opts.user = auth.user;
    opts.pass = auth.pass;
  } else if (!explicit && auth !== undefined) opts.token = auth.user;
  if (options.user !== undefined) opts.user = options.user;
  if (options.pass !== undefined) opts.pass = options.pass;
  if (options.timeoutMs !== undefined) opts.timeout = options.timeoutMs;
  if (options.token !== undefined) opts.token = options.token;
  if (options.credsFile !== undefined) {
    const creds = await readFile(options.credsFile);
    opts.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  const tls: TlsOptions = {};
  if (options.tls?.caFile !== undefined) tls.caFile = options.tls.caFile;
  if (options.tls?.certFile !== undefined) tls.certFile = options.tls.certFile;
  if (options.tls?.keyFile !== undefined) tls.keyFile = options.tls.keyFile;
  if (Object.keys(tls).length > 0 || servers.some((s) => s.startsWith("tls://"))) opts.tls = tls;
  return connect(opts);
}

/**
 * Takes `user:pass@` (or `token@`) out of server URLs. nats.js ignores the user-info of a URL
 * (the server then answers "Authorization Violation"), while other NATS clients and our own
 * NATS_URL accept it: the credentials become connect options and the URLs go without them.
 * The first URL that carries credentials gives them (a cluster shares its accounts).
 */
export function splitServerCredentials(list: string): {
  servers: string[];
  auth?: { user: string; pass?: string };
} {
  let auth: { user: string; pass?: string } | undefined;
  const servers = list
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => {
      const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/i.exec(s);
      if (!m) return s;
      const [, scheme, info = "", rest] = m;
      if (auth === undefined && info.length > 0) {
        const at = info.indexOf(":");
        auth =
          at < 0
            ? { user: decodeURIComponent(info) }
            : {
                user: decodeURIComponent(info.slice(0, at)),
                pass: decodeURIComponent(info.slice(at + 1)),
              };
      }
      return `${scheme}${rest}`;
    });
  return auth === undefined ? { servers } : { servers, auth };
}
