import type { NatsConnection } from "nats";

export interface StallWatchOptions {
  /** How often the stream's last sequence is read (default 5 s). */
  everyMs?: number;
  /** How long the reader may stand still while the stream is ahead (default 15 s). */
  graceMs?: number;
}

/**
 * Calls `onStall` once a reader of `stream` (a KV watch, say) has stood still for `graceMs`
 * while the stream holds newer messages. A KV watch is an ordered push consumer on one server:
 * when that server dies the client re-creates it, but a re-creation that meets a cluster busy
 * electing leaders can leave the watch silent for good (nats 2.29 against nats-server 2.9.10,
 * seen killing a node of a 3-node cluster). The caller then starts a fresh watch. Reads the
 * stream info (answered by the stream's leader, no consumer); a read that gets no answer is
 * skipped. Returns a function that stops the checks.
 */
export function watchForStall(
  nc: NatsConnection,
  stream: string,
  lastSeen: () => number,
  onStall: (err: Error) => void,
  o: StallWatchOptions = {},
): () => void {
  const everyMs = o.everyMs ?? 5_000;
  const graceMs = o.graceMs ?? 15_000;
  let seen = lastSeen();
  let stillSince = Date.now();
  let stopped = false;
  let checking = false;
  const check = async () => {
    const now = Date.now();
    if (lastSeen() !== seen) {
      seen = lastSeen();
      stillSince = now;
      return;
    }
    if (now - stillSince < graceMs) return;
    const jsm = await nc.jetstreamManager({ checkAPI: false });
    const last = (await jsm.streams.info(stream)).state.last_seq;
    if (stopped || lastSeen() !== seen) return;
    if (last > seen) {
      stopped = true;
      clearInterval(timer);
      onStall(
        new Error(
          `reader of ${stream} stalled at ${seen} for ${now - stillSince} ms; last ${last}`,
        ),
      );
    } else stillSince = now; // nothing new to read: idle, not stalled
  };
  const timer = setInterval(() => {
    if (checking || stopped) return;
    checking = true;
    check()
      .catch(() => undefined)
      .finally(() => (checking = false));
  }, everyMs);
  timer.unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
