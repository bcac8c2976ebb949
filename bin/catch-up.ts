import type { JetStreamManager } from "nats";
import type { Logger } from "pino";
import { consumerInfos, EVENTS_STREAM } from "../connectors/nats/streams.js";
import { STREAMS } from "../connectors/nats/topology.js";

/**
 * Progress of catching up on stored events at start (a restart after a while, a replay that ran
 * while the engine was down): messages done and pending, messages/s and the time left. A live
 * line on a terminal (stderr), a log line every 10 s otherwise, and one when caught up. Read from
 * the server's view of the engine's consumers: the events in EVENTS and the hops between stages
 * in RECO_HOPS (parse reads the events in a second; the stages behind it take the time), each
 * consumer's messages delivered so far and still pending.
 */

/** One look at the engine's consumers, summed. */
export interface InputPosition {
  /** Messages delivered to them so far (their consumer sequences). */
  delivered: number;
  /** Messages stored for them and not delivered yet. */
  pending: number;
}

export interface Progress {
  done: number;
  pending: number;
  /** Events/s over the recent samples (0 until two samples). */
  rate: number;
  /** Seconds left at that rate (undefined while unknown). */
  leftS: number | undefined;
  elapsedMs: number;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const dur = (s: number) =>
  s < 90
    ? `${Math.ceil(s)} s`
    : s < 5400
      ? `${Math.ceil(s / 60)} min`
      : `${(s / 3600).toFixed(1)} h`;

/**
 * "catching up on stored events: 120,000 messages done, 330,000 pending, 8,300/s, about 40 s left"
 */
export function progressLine(p: Progress): string {
  const rate = p.rate > 0 ? `, ${fmt(p.rate)}/s` : "";
  const left = p.leftS !== undefined ? `, about ${dur(p.leftS)} left` : "";
  return `catching up on stored events: ${fmt(p.done)} messages done, ${fmt(p.pending)} pending${rate}${left}`;
}

/** Tracks samples of the input position and says how far catching up has come. */
export function createProgress(first: InputPosition, at: number, windowMs = 10_000) {
  const samples: { at: number; delivered: number }[] = [{ at, delivered: first.delivered }];
  return (now: InputPosition, t: number): Progress => {
    samples.push({ at: t, delivered: now.delivered });
    while (samples.length > 2 && t - samples[1]!.at >= windowMs) samples.shift();
    const from = samples[0]!;
    const rate = t > from.at ? ((now.delivered - from.delivered) * 1000) / (t - from.at) : 0;
    return {
      done: now.delivered - first.delivered,
      pending: now.pending,
      rate,
      leftS: rate > 0 ? now.pending / rate : undefined,
      elapsedMs: t - at,
    };
  };
}

/** The engine's consumers of EVENTS and of the hops, summed, as the server sees them. */
export async function eventsPosition(jsm: JetStreamManager): Promise<InputPosition | undefined> {
  const events = await consumerInfos(jsm, EVENTS_STREAM);
  // Not before parse reads the events: until then the hops' consumers have nothing pending.
  if (events.length === 0) return undefined;
  const consumers = [...events, ...(await consumerInfos(jsm, STREAMS.hops))];
  let delivered = 0;
  let pending = 0;
  for (const c of consumers) {
    delivered += c.delivered.consumer_seq;
    pending += c.num_pending;
  }
  return { delivered, pending };
}

export interface CatchUpOptions {
  position: () => Promise<InputPosition | undefined>;
  log: Logger;
  /** A terminal to keep a live line on (stderr when it is one). */
  tty?: NodeJS.WriteStream | undefined;
  /** Caught up within this long after the start: nothing worth reporting. Default 3 s. */
  graceMs?: number;
  pollMs?: number;
  logEveryMs?: number;
  now?: () => number;
}

/** Reports catching up until caught up (or stopped). */
export function reportCatchUp(o: CatchUpOptions): { stop(): void; done: Promise<void> } {
  const now = o.now ?? Date.now;
  const pollMs = o.pollMs ?? 1_000;
  const logEveryMs = o.logEveryMs ?? 10_000;
  const graceMs = o.graceMs ?? 3_000;
  let stopped = false;
  let wake: () => void = () => undefined;
  const sleep = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      t.unref();
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  const live = (line: string) => o.tty?.write(`\r\x1b[2K${line}`);
  const done = (async () => {
    let first: InputPosition | undefined;
    // The engine's readers exist once its stages run.
    for (let tries = 0; !first && !stopped && tries < 120; tries++) {
      first = await o.position().catch(() => undefined);
      if (!first) await sleep(pollMs);
    }
    if (!first) return;
    const t0 = now();
    const progress = createProgress(first, t0);
    let reported = false;
    let loggedAt = t0;
    while (!stopped) {
      await sleep(pollMs);
      if (stopped) break;
      const pos = await o.position().catch(() => undefined);
      if (!pos) continue;
      const at = now();
      const p = progress(pos, at);
      if (pos.pending === 0) {
        if (!reported) return;
        if (o.tty) live("");
        const s = p.elapsedMs / 1000;
        o.log.info(
          { messages: p.done, seconds: Number(s.toFixed(1)) },
          `caught up on stored events: ${fmt(p.done)} messages in ${dur(s)} (${fmt(p.done / Math.max(s, 0.001))}/s)`,
        );
        return;
      }
      if (!reported && at - t0 < graceMs) continue;
      if (o.tty) live(progressLine(p));
      if (!reported || (!o.tty && at - loggedAt >= logEveryMs)) {
        reported = true;
        loggedAt = at;
        o.log.info({ done: p.done, pending: p.pending, rate: Math.round(p.rate) }, progressLine(p));
      }
    }
    if (o.tty) live("");
  })();
  return {
    stop: () => {
      stopped = true;
      wake();
    },
    done,
  };
}
