import {
  DiscardPolicy,
  RetentionPolicy,
  StorageType,
  type JetStreamManager,
  type KV,
  type KvEntry,
  type NatsConnection,
  type StreamConfig,
} from "nats";
import { buckets as BUCKETS, subjects } from "../../actors/contract/index.js";

/** Streams and buckets the pipeline needs besides EVENTS (see streams.ts). */
export const STREAMS = {
  /** Inter-stage hops: reco.<stage>.<partition>. */
  hops: "RECO_HOPS",
  /** Dead letters: reco.dlq.parse, reco.dlq.poison. */
  dlq: "RECO_DLQ",
  /** Events behind the watermark: reco.late. */
  late: "RECO_LATE",
  /** Item upserts (`items.upsert`): the catalogue's explicit input, kept like EVENTS. */
  items: "ITEMS",
} as const;

export const HOP_STAGES = ["parse", "items", "watermark", "window", "interest-ranking"] as const;

// Named where the stages name their subjects (actors/contract/subjects.ts); kept here under their old names.
export { BUCKETS };
export { kvKeyOf, idOfKvKey } from "../../actors/contract/index.js";

export interface TopologyOptions {
  replicas?: number;
  /** Duplicate window for Nats-Msg-Id deduplication of hop outputs. */
  duplicateWindowMs?: number;
  /** How long hop messages are kept (they are needed only back to the oldest snapshot). */
  hopMaxAgeMs?: number;
}

const ms = (v: number) => v * 1_000_000; // nanoseconds

/** Creates (or updates) the pipeline's streams and buckets; idempotent. */
export async function ensureTopology(
  nc: NatsConnection,
  jsm: JetStreamManager,
  options: TopologyOptions = {},
): Promise<void> {
  const replicas = options.replicas ?? 1;
  const dup = ms(options.duplicateWindowMs ?? 120_000);
  await ensureStream(jsm, {
    name: STREAMS.hops,
    subjects: [...HOP_STAGES.map((s) => `reco.${s}.*`), subjects.pairsAll, subjects.collabAll],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    duplicate_window: dup,
    max_age: ms(options.hopMaxAgeMs ?? 7 * 24 * 3_600_000),
  });
  await ensureStream(jsm, {
    name: STREAMS.dlq,
    subjects: ["reco.dlq.>"],
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: dup,
  });
  await ensureStream(jsm, {
    name: STREAMS.late,
    subjects: ["reco.late"],
    storage: StorageType.File,
    num_replicas: replicas,
    duplicate_window: dup,
  });
  // No max age: the catalogue's explicit layer is rebuilt from it like any stage's input.
  await ensureStream(jsm, {
    name: STREAMS.items,
    subjects: ["items.upsert"],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    duplicate_window: dup,
  });
  const js = nc.jetstream();
  await js.views.kv(BUCKETS.popularity, { history: 1, replicas });
  await js.views.kv(BUCKETS.catalogue, { history: 1, replicas });
  await js.views.kv(BUCKETS.trending, { history: 1, replicas });
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Partial<StreamConfig> & { name: string },
) {
  try {
    const info = await jsm.streams.info(config.name);
    await jsm.streams.update(config.name, { ...info.config, ...config });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(config);
  }
}

export function isNotFound(err: unknown): boolean {
  const e = err as { code?: string; api_error?: { err_code?: number } };
  return (
    e?.code === "404" ||
    e?.api_error?.err_code === 10059 ||
    e?.api_error?.err_code === 10014 ||
    /not found/i.test(String((err as Error)?.message))
  );
}

/**
 * Retries `fn` while JetStream cannot answer yet (a timeout, no responders, no meta leader while
 * a cluster elects one after a node died), with backoff, for up to `forMs`.
 */
export async function whenJetStreamAnswers<T>(fn: () => Promise<T>, forMs = 60_000): Promise<T> {
  const until = Date.now() + forMs;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2_000)) {
    try {
      return await fn();
    } catch (err) {
      const text = String((err as Error)?.message ?? err);
      const transient = /TIMEOUT|503|no responders|leader|not available|temporarily/i.test(
        `${(err as { code?: string }).code ?? ""} ${text}`,
      );
      if (!transient || Date.now() + delay > until) throw err;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * The keys of a KV bucket that hold a value (PUT), from the stream's subject list and direct
 * gets. Unlike `kv.keys()` it creates no consumer: no request to the cluster's meta leader,
 * which is what a cluster that just lost a node can least afford.
 */
export async function liveKeys(
  jsm: JetStreamManager,
  kv: KV,
  bucket: string,
): Promise<Map<string, KvEntry>> {
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  const out = new Map<string, KvEntry>();
  for (const subject of Object.keys(info.state.subjects ?? {}).sort()) {
    const k = subject.slice(prefix.length);
    const e = await kv.get(k);
    if (e?.operation === "PUT") out.set(k, e);
  }
  return out;
}
