import { pino, type Logger } from "pino";
import pretty from "pino-pretty";

/**
 * The engine's logger: readable lines on a terminal (time, level, message, then the fields), JSON
 * lines otherwise, for log shippers and `jq` (a pipe, a file, systemd, Kubernetes). pino-pretty is
 * pino's own prettifier: colours, level names and field layout without writing any of it here.
 */
export function createLogger(
  level: string,
  out: NodeJS.WritableStream & { isTTY?: boolean } = process.stdout,
): Logger {
  if (out.isTTY !== true) return out === process.stdout ? pino({ level }) : pino({ level }, out);
  return pino(
    { level },
    pretty({
      destination: out,
      colorize: true,
      sync: true,
      translateTime: "SYS:HH:MM:ss.l",
      ignore: "pid,hostname",
    }),
  );
}
