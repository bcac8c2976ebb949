import type { Logger } from "pino";
import { connectNats } from "../connectors/nats/connection.js";
import type { AppConfig } from "./config.js";

/** Connects with the configured credentials and TLS; disconnects and errors are logged. */
export async function connectWithStatus(
  cfg: AppConfig,
  servers: string,
  name: string,
  log: Logger,
) {
  const nc = await connectNats({
    servers,
    name,
    ...(cfg.natsUser !== undefined ? { user: cfg.natsUser } : {}),
    ...(cfg.natsPass !== undefined ? { pass: cfg.natsPass } : {}),
    ...(cfg.natsToken !== undefined ? { token: cfg.natsToken } : {}),
    ...(cfg.natsCreds !== undefined ? { credsFile: cfg.natsCreds } : {}),
    tls: { caFile: cfg.natsTlsCa, certFile: cfg.natsTlsCert, keyFile: cfg.natsTlsKey },
  });
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error")
        log.warn({ type: s.type, data: String(s.data) }, "nats connection status");
    }
  })();
  return nc;
}
