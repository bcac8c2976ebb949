import { join } from "node:path";
import { pino } from "pino";
import { loadConfig } from "../../bin/config.js";
import { startApp, type App } from "../../bin/app.js";

/**
 * The app in this process as integration tests run it: on the test's nats-server, its state in
 * `dir`/data, every listener on a free loopback port, logs off; `settings` add or override any.
 */
export function startTestApp(
  natsUrl: string,
  dir: string,
  settings: Record<string, string> = {},
): Promise<App> {
  return startApp(
    loadConfig({
      NATS_URL: natsUrl,
      DATA_DIR: join(dir, "data"),
      GRPC_PORT: "0",
      GRPC_HOST: "127.0.0.1",
      METRICS_PORT: "0",
      WEB_PORT: "0",
      LOG_LEVEL: "silent",
      ...settings,
    }),
    pino({ level: "silent" }),
  );
}
