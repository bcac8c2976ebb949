import type { HopPublisher } from "./transport.js";
import type { StageOutput } from "./types.js";
import type { HopCodec } from "./codec.js";
import { fitRawOutput, isPermanentPublishError } from "./dead-letter.js";

/**
 * A stage instance's outputs between two flushes: records buffered per subject and sent as one
 * hop ("B records or T ms", see batching.ts), raw messages (dead letters, late events,
 * poison copies) and KV upserts. A hop carries a deterministic Nats-Msg-Id and `upTo`, the input
 * position it covers, so the next stage drops a batch it has already seen.
 */

/**
 * Failures per input sequence (attempts, last error), kept across restarts of one instance.
 * `publish`: the failure was a raw output of that input the server or client refused for good
 * (handle itself succeeded, so a success of handle does not clear it; a snapshot past it does).
 */
export type PoisonLedger = Map<number, { attempts: number; error: string; publish?: boolean }>;

export interface OutputOptions {
  stage: string;
  partition: number;
  /** B: a subject's hop goes after the input that filled it (Infinity: per input). */
  maxRecords: number;
  codec: HopCodec;
  /** The publisher of the running incarnation. */
  publisher(): HopPublisher;
  /** The server's max_payload: hops are cut at half of it, raw outputs truncated to fit. */
  maxPayload(): number;
  /** A hop over max_payload goes in parts (StageSpec.splitHops). */
  splitHops?: boolean;
  /** The input position now (a hop's `upTo`). */
  position(): number;
  /** Processing time, for how long records have waited (the batching scheduler's clock). */
  now(): number;
  /**
   * Called when something is buffered where nothing was (a first record, or a subject touched):
   * arms the batching timer (batching.ts). Also for emits outside an input's handling.
   */
  buffering?(): void;
  ledger: PoisonLedger;
}

export interface HostOutputs {
  readonly out: StageOutput;
  /** The input whose handling emits now (raw outputs refused for good count against it). */
  setCurrent(seq: number | undefined): void;
  /** Event-time progress stamped on outgoing hops. */
  progress(): number;
  /** `upTo` of the last hop per subject (kept with the snapshot; each hop names it as `prev`). */
  sent(): Record<string, number>;
  /** Restores what a snapshot kept. */
  load(o: { progress: number; sent: Record<string, number>; stats: Record<string, number> }): void;
  /** The persisted counts (StageOutput.count). */
  stats(): Record<string, number>;
  /** Records buffered and since when (0 when none). */
  buffered(): { records: number; since: number; subjects: number };
  /** Whether some subject reached B records (or half max_payload) with the last input. */
  hasFull(): boolean;
  /** Sends the full subjects only. */
  flushFull(): void;
  /** Sends every batch, or with `all` false only the empty ones (progress) while backlogged. */
  flush(all?: boolean): void;
  /** Records, raw messages and upserts sent since the last call. */
  takeSentCount(): number;
}

const enc = new TextEncoder();
const ignore = () => undefined;
const UPSERT = Object.freeze({ upsert: true });

export function createHostOutputs(o: OutputOptions): HostOutputs {
  const { stage, partition, maxRecords, codec, ledger } = o;
  let progress = -1;
  let sent: Record<string, number> = {};
  let stats: Record<string, number> = {};
  let current: number | undefined;
  let bufferedRecords = 0;
  let firstBufferedAt = 0;
  let outputCount = 0;
  const buffers = new Map<string, unknown[]>();
  // Idle markers (envelope.ts `ix`) for each subject's next hop.
  const idles = new Map<string, number[]>();
  // Buffers that hold exactly the records of one input message (StageOutput.forward), with its
  // bytes and record count: unless something was emitted after them, they go out as those bytes.
  const forwarded = new Map<string, { data: Uint8Array; n: number }>();
  // Subjects whose buffer reached B records: sent after the current input, the others wait for T.
  const full: string[] = [];
  const raws: {
    subject: string;
    data: Uint8Array;
    headers: Record<string, string>;
    id: string;
    /** The input that produced it (undefined from a tick). */
    seq: number | undefined;
  }[] = [];
  const kvPuts = new Map<string, { bucket: string; key: string; value: unknown }>();
  // Bytes emitted per subject since its last hop (StageOutput.emit's `bytes`), and the bound.
  const hopBytes = new Map<string, number>();
  const maxHopBytes = Math.floor(o.maxPayload() / 2);

  const out: StageOutput = {
    emit(subject, record, bytes) {
      let b = buffers.get(subject);
      if (!b) buffers.set(subject, (b = []));
      if (b.push(record) === maxRecords) full.push(subject);
      if (bytes !== undefined) {
        const before = hopBytes.get(subject) ?? 0;
        hopBytes.set(subject, before + bytes);
        if (before < maxHopBytes && before + bytes >= maxHopBytes) full.push(subject);
      }
      if (bufferedRecords++ === 0) {
        firstBufferedAt = o.now();
        o.buffering?.();
      }
    },
    forward(subject, data, recs) {
      const b = buffers.get(subject);
      if ((b !== undefined && b.length > 0) || recs.length === 0) {
        for (const r of recs) out.emit(subject, r);
        if (b === undefined) out.touch(subject);
        return;
      }
      // A copy: `recs` may be a decoded batch that other readers of the input share.
      const copy = recs.slice();
      buffers.set(subject, copy);
      forwarded.set(subject, { data, n: copy.length });
      if (copy.length >= maxRecords) full.push(subject);
      const first = bufferedRecords === 0;
      if (first) firstBufferedAt = o.now();
      bufferedRecords += copy.length;
      if (first) o.buffering?.();
    },
    touch(subject, ix) {
      if (ix !== undefined && ix.length > 0) {
        const had = idles.get(subject);
        if (had) had.push(...ix);
        else idles.set(subject, [...ix]);
      }
      if (!buffers.has(subject)) {
        buffers.set(subject, []);
        o.buffering?.();
      }
    },
    setProgress(wm) {
      progress = wm;
    },
    raw(subject, data, headers, id) {
      raws.push({ subject, data, headers, id, seq: current });
    },
    kvPut(bucket, key, value) {
      kvPuts.set(`${bucket}\u0000${key}`, { bucket, key, value });
    },
    count(name, n = 1) {
      stats[name] = (stats[name] ?? 0) + n;
    },
  };

  // Publish failures surface in publisher.flush() at the next snapshot, which then fails the
  // instance: it restarts from its snapshot and publishes again (same ids, dropped downstream).
  const publishHop = (subject: string, recs: unknown[]) => {
    const upTo = o.position();
    const prev = sent[subject] ?? 0;
    if (hopBytes.size > 0) hopBytes.delete(subject);
    const ix = idles.size > 0 ? idles.get(subject) : undefined;
    if (ix !== undefined) idles.delete(subject);
    // Nothing new since this subject's last hop (a touch, as parse's broadcast, at the position
    // already sent): a reader drops it as covered, so it is not sent. It used to go with the
    // same Nats-Msg-Id as that hop: when the hop was lost with a dying node, the empty one was
    // stored first, the hop's re-send was then dropped as its duplicate, and every reader of
    // the subject waited for it for ever (the cluster test's stall).
    if (prev === upTo && recs.length === 0 && ix === undefined) return;
    sent[subject] = upTo;
    let data: Uint8Array | undefined;
    const f = forwarded.size > 0 ? forwarded.get(subject) : undefined;
    if (f !== undefined) {
      forwarded.delete(subject);
      // Emits only append: the same count means the same records.
      if (f.n === recs.length && ix === undefined)
        data = codec.withHead(f.data, upTo, progress, prev);
    }
    // (prev, upTo] names the content: the subject's records of those input positions.
    const msgId = `${stage}.${partition}.${prev}-${upTo}.${subject}`;
    const whole = data ?? codec.encode(upTo, progress, recs, prev, ix);
    if (o.splitHops && whole.length > o.maxPayload() && recs.length > 1) {
      // Halves until each part is at most half of max_payload (room for the headers, as hops
      // are cut), in order: the reader drops what it has by the records' own numbering
      // (StageSpec.splitHops), and a part's id names its place.
      const parts = (rs: unknown[], id: string, d = codec.encode(upTo, progress, rs, prev, ix)) => {
        if (d.length <= o.maxPayload() / 2 || rs.length === 1) {
          o.publisher().publish(subject, d, { msgId: id }).catch(ignore);
          return;
        }
        const mid = rs.length >> 1;
        parts(rs.slice(0, mid), `${id}0`);
        parts(rs.slice(mid), `${id}1`);
      };
      parts(recs, `${msgId}#`, whole);
    } else o.publisher().publish(subject, whole, { msgId }).catch(ignore);
    outputCount += recs.length;
  };

  return {
    out,
    setCurrent: (seq) => void (current = seq),
    progress: () => progress,
    sent: () => sent,
    stats: () => stats,
    load(s) {
      progress = s.progress;
      sent = { ...s.sent };
      stats = { ...s.stats };
    },
    buffered: () => ({ records: bufferedRecords, since: firstBufferedAt, subjects: buffers.size }),
    hasFull: () => full.length > 0,
    /**
     * A hop's `upTo` is the input position when it is sent, and every record of its subject up
     * to there is in it or an earlier hop, so a subject may go ahead of the others (downstream
     * dedupes per subject).
     */
    flushFull() {
      for (const subject of full) {
        const recs = buffers.get(subject);
        if (recs === undefined || recs.length === 0) continue;
        publishHop(subject, recs);
        buffers.delete(subject);
        bufferedRecords -= recs.length;
      }
      full.length = 0;
    },
    flush(all = true) {
      const pub = o.publisher();
      if (all) {
        for (const [subject, recs] of buffers) publishHop(subject, recs);
        buffers.clear();
        forwarded.clear();
        full.length = 0;
        bufferedRecords = 0;
      } else {
        for (const [subject, recs] of buffers)
          if (recs.length === 0) {
            publishHop(subject, recs);
            buffers.delete(subject);
          }
      }
      // A raw output (dead letter, late event, poison copy) too large with its headers goes
      // truncated (dead-letter.ts); one refused for good counts as a failure of its input, so
      // that input reaches reco.dlq.poison after maxAttempts instead of failing every snapshot.
      const maxPayload = o.maxPayload();
      for (const r of raws) {
        const fit = fitRawOutput(r.data, r.headers, r.id, maxPayload);
        pub.publish(r.subject, fit.data, { msgId: r.id, headers: fit.headers }).catch((err) => {
          if (r.seq === undefined || !isPermanentPublishError(err)) return;
          const attempts = (ledger.get(r.seq)?.attempts ?? 0) + 1;
          ledger.set(r.seq, { attempts, error: errorText(err), publish: true });
        });
      }
      outputCount += raws.length;
      raws.length = 0;
      // A KV put is a publish to $KV.<bucket>.<key>: through the same publisher, so the next
      // snapshot waits for it like for any other output (a crash cannot lose an upsert that the
      // snapshot claims). Only the last value per key of this flush is sent.
      //
      // Without a Nats-Msg-Id, on purpose: a replay from the snapshot puts again, in order,
      // every value put since, so the bucket ends at the newest. With ids, a nats-server that
      // restarted in between had rebuilt its duplicate map from the messages it still held: a
      // bucket keeps one per key, so the newest value's id was known and the older ones' were
      // not; the replay stored an older value and the newest was dropped as a duplicate
      // (purchases lost from the popularity table, a stale heartbeat watermark). A timed-out
      // put is re-sent as an upsert (publisher.ts): only while no newer put of its key follows
      // it, so a re-send never lands after a newer value. It used to get one attempt, and under
      // load a PubAck later than 5 s failed the stage into a restart loop.
      for (const p of kvPuts.values())
        pub
          .publish(`$KV.${p.bucket}.${p.key}`, enc.encode(JSON.stringify(p.value)), UPSERT)
          .catch(ignore);
      outputCount += kvPuts.size;
      kvPuts.clear();
    },
    takeSentCount() {
      const n = outputCount;
      outputCount = 0;
      return n;
    },
  };
}

export function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
