/**
 * Step 3's per-hop timestamps: where a freshness probe spent its time. A core NATS subscription
 * on the events and every hop subject sees each message as it is published (JetStream stores the
 * same messages; a core subscriber gets a copy: the publish as the server saw it, whether or not
 * JetStream then stored or deduplicated it). Each message is searched for the probes' item
 * ids ("probe-item-<k>": plain bytes in JSON and in binary hops alike), and the first time each
 * hop carried probe k is kept, relative to the probe's publish. Also counted: hop messages
 * published twice under one Nats-Msg-Id (a re-send after no PubAck came within the publisher's
 * timeout, 5 s by default), with the gap between the two sends.
 */
import type { NatsConnection } from "nats";

export interface HopTrace {
  /** Probe k was published at `t0` (performance.now()). */
  start(k: number, t0: number): void;
  /** "events +1 ms, parse +4 ms, …" in the order reached; `total` is publish → visible. */
  timeline(k: number, total: number): string;
  /** Re-sent hop messages so far: count and largest gap (ms), with the slowest one's subject. */
  resends(): { count: number; maxGapMs: number; subject: string };
  stop(): void;
}

const MARKER = Buffer.from("probe-item-");
/** Message ids remembered for the re-send check (a hop's re-send comes within ~20 s). */
const ID_MEMORY_MS = 30_000;

export function traceProbeHops(nc: NatsConnection): HopTrace {
  const t0s = new Map<number, number>();
  const seen = new Map<number, Map<string, number>>();
  const ids = new Map<string, number>();
  let resent = 0;
  let maxGap = 0;
  let maxGapSubject = "";
  let lastPrune = performance.now();

  const onMessage = (subject: string, data: Uint8Array, msgId: string | undefined) => {
    const now = performance.now();
    if (msgId !== undefined && subject.startsWith("reco.")) {
      const key = `${subject} ${msgId}`;
      const first = ids.get(key);
      if (first === undefined) ids.set(key, now);
      else {
        resent++;
        if (now - first > maxGap) {
          maxGap = now - first;
          maxGapSubject = subject;
        }
      }
      if (now - lastPrune > 5000) {
        lastPrune = now;
        for (const [id, t] of ids) if (now - t > ID_MEMORY_MS) ids.delete(id);
      }
    }
    const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
    let at = buf.indexOf(MARKER);
    if (at < 0) return;
    const hop = subject.split(".")[subject.startsWith("reco.") ? 1 : 0]!;
    while (at >= 0) {
      let k = 0;
      let p = at + MARKER.length;
      for (; p < buf.length && buf[p]! >= 48 && buf[p]! <= 57; p++) k = k * 10 + buf[p]! - 48;
      const t0 = t0s.get(k);
      if (t0 !== undefined) {
        let hops = seen.get(k);
        if (hops === undefined) seen.set(k, (hops = new Map()));
        if (!hops.has(hop)) hops.set(hop, now - t0);
      }
      at = buf.indexOf(MARKER, p);
    }
  };
  const subs = ["events.>", "reco.>"].map((s) =>
    nc.subscribe(s, {
      callback: (err, m) => {
        if (!err) onMessage(m.subject, m.data, m.headers?.get("Nats-Msg-Id") || undefined);
      },
    }),
  );
  return {
    start: (k, t0) => void t0s.set(k, t0),
    timeline(k, total) {
      const hops = [...(seen.get(k) ?? new Map<string, number>())].sort((a, b) => a[1] - b[1]);
      return [...hops.map(([h, ms]) => `${h} +${ms.toFixed(0)}`), `visible +${total.toFixed(0)}`]
        .join(", ")
        .concat(" ms");
    },
    resends: () => ({ count: resent, maxGapMs: maxGap, subject: maxGapSubject }),
    stop: () => subs.forEach((s) => s.unsubscribe()),
  };
}
