import { readFileSync, statfsSync } from "node:fs";
import type { Logger } from "pino";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";

/**
 * Keeps the private nats-server (NATS_URL unset) answering. A full disk hangs nats-server 2.9's
 * JetStream for good (its API and /jsz stop answering, and the clients' pings with them) even
 * after the space is back; only a new server process brings it back. So when the server or its
 * JetStream has not answered for NATS_RESTART_AFTER_MS, or the server exited, it is stopped
 * (TERM, then KILL: after a full disk it ignores TERM) and started again on the same port and
 * store: what JetStream acknowledged is on disk, the engine's consumers resume from their acked
 * positions and its publishers retry with the same message ids, so nothing is lost or counted
 * twice. A server someone stopped (SIGSTOP: its state is "T") is left alone: they will SIGCONT it.
 * Nor is one restarted while its store's disk is still full: a nats-server started without room
 * comes up without its streams (insufficient storage resources), and stays so after the space is
 * back; it is restarted once there is room again.
 */
export interface NatsKeeper {
  /** The server running now. */
  server(): EmbeddedNats;
  /** Restarts so far. */
  restarts(): number;
  /** Stops watching and stops the server. */
  stop(): Promise<void>;
}

export interface NatsKeeperOptions {
  first: EmbeddedNats;
  /** Starts a new server on the same port and store. */
  start: () => Promise<EmbeddedNats>;
  /** Since when the server or its JetStream has not answered (undefined: it answers). */
  notAnsweringSince: () => { since: number; why: string } | undefined;
  restartAfterMs: number;
  log: Logger;
  checkEveryMs?: number;
  now?: () => number;
  /** Whether the store's disk has room for a server to start with its streams. */
  hasRoom?: () => boolean;
  /** The process state letter of a pid (Linux /proc); undefined where unknown. */
  processState?: (pid: number) => string | undefined;
}

/** Free space a private nats-server needs to start with its streams (bytes). */
export const NATS_MIN_FREE_BYTES = 16 << 20;

/** Bytes available to us on the filesystem of `dir` (Infinity when it cannot be told). */
export function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return Infinity;
  }
}

/** The state letter of /proc/<pid>/stat: R, S, D, T (stopped), t (traced), Z... */
export function procState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) S ...": comm may hold spaces and parentheses; the state follows the last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).charAt(0) || undefined;
  } catch {
    return undefined;
  }
}

export function keepPrivateNats(o: NatsKeeperOptions): NatsKeeper {
  const now = o.now ?? Date.now;
  const state = o.processState ?? procState;
  let current = o.first;
  let restarts = 0;
  let stopping = false;
  let restarting: Promise<void> | undefined;
  let lastRestart = -Infinity;
  let exited = false;

  const watchExit = (s: EmbeddedNats) =>
    void s.exited().then((code) => {
      if (stopping || restarting || s !== current) return;
      exited = true;
      o.log.warn({ natsPid: s.pid, code }, "private nats-server exited: starting it again");
      tick();
    });

  const restart = (why: string) =>
    (restarting ??= (async () => {
      const old = current;
      o.log.warn(
        { natsPid: old.pid, why },
        `private nats-server ${why}: restarting it (pid ${old.pid})`,
      );
      lastRestart = now();
      await old.stop(3_000);
      if (stopping) return;
      try {
        current = await o.start();
        exited = false;
        restarts++;
        watchExit(current);
        o.log.info({ natsPid: current.pid, restarts }, "private nats-server started again");
      } catch (err) {
        // A full disk may fail the start too: the next check tries again.
        o.log.error({ err: (err as Error).message }, "private nats-server did not start again");
        exited = true;
      }
    })().finally(() => (restarting = undefined)));

  const tick = () => {
    if (stopping || restarting || o.restartAfterMs <= 0) return;
    const room = o.hasRoom?.() ?? true;
    if (exited) {
      if (room && now() - lastRestart >= Math.min(o.restartAfterMs, 5_000))
        void restart("is not running");
      return;
    }
    const down = o.notAnsweringSince();
    if (!down) return;
    const at = now();
    if (at - down.since < o.restartAfterMs || at - lastRestart < o.restartAfterMs) return;
    const st = state(current.pid);
    if (st === "T" || st === "t" || !room) return;
    void restart(`has not answered for ${Math.round((at - down.since) / 1000)} s (${down.why})`);
  };
  watchExit(current);
  const timer = setInterval(tick, o.checkEveryMs ?? 2_000);
  timer.unref();
  return {
    server: () => current,
    restarts: () => restarts,
    stop: async () => {
      stopping = true;
      clearInterval(timer);
      await restarting;
      await current.stop();
    },
  };
}
