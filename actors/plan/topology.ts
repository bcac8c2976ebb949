import {
  buckets as BUCKETS,
  catalogueKey,
  kvKeyOf,
  subjects,
  partitionOf,
} from "../contract/index.js";
import {
  deadLetterHeaders,
  IDLE_SIGNATURE_HEADER,
  IDLE_SUBJECT,
  signIdleMarker,
} from "../host/index.js";
import type {
  collaborativeStage,
  MergedTopology,
  RowsRecord,
  parseStage,
  popularityStage,
  watermarkStage,
  windowStage,
  interestStage,
  historyStage,
  trendingStage,
  catalogueStage,
  catalogueUpsertStage,
} from "../stages/index.js";
import type { PairRecord, ParsedRecord } from "../contract/index.js";
import type { PortTopology } from "../host/index.js";
import { deltaBytes } from "../sources/index.js";
import { sendLate, type LateCounter } from "../stages/index.js";

/**
 * KV key of the popularity table's heartbeat row, whose `wm` carries partition 0's progress. Every
 * table moves its watermark on (table.wm is the highest `wm` of any row it applied) even when no
 * row changes, e.g. when only time passes, so GetRecommendations reports the watermark its answer
 * reflects.
 */
export const POPULARITY_HEARTBEAT_KEY = "wm.0";

const enc = new TextEncoder();

/**
 * An upper bound of a parsed record's JSON: at most 6 bytes per UTF-16 unit (a control character
 * is escaped as \u00XX), 300 for the rest. The host cuts a hop before it nears max_payload.
 */
const recordBytes = (r: ParsedRecord) =>
  300 + 6 * (r.u.length + r.i.length + r.c.length + r.b.length);

/** An upper bound of a pair record's bytes (see recordBytes). */
const pairBytes = (r: PairRecord) => {
  let n = 100 + 6 * r.i.length + 12 * r.n.length + (r.e ? 60 + 6 * r.e.c.length : 0);
  for (const b of r.n) n += 6 * b.length;
  return n;
};

/** An upper bound of a collaborative rows record's bytes (see recordBytes). */
const rowsRecordBytes = (r: RowsRecord) => ("x" in r ? 200 : 100 + deltaBytes(r.d));

/** The KV bucket trending writes its top lists and heartbeats to. */
export const TRENDING_BUCKET = BUCKETS.trending;

/**
 * The composition: where each port of each stage goes (hop subjects, raw subjects, KV buckets).
 * Stages written to the contract (runtime/stage.ts) name ports only: this maps them to addresses.
 * (parse and trending still name their subjects themselves.)
 */
export const stageTopology = {
  /** parse: accepted events by user and by item; progress to every partition; dead letters. */
  parse: (P: number, markerKey?: Uint8Array): PortTopology<typeof parseStage.ports> => ({
    user: (r, out) => out.emit(subjects.parse(partitionOf(r.u, P)), r, recordBytes(r)),
    items: (r, out) => out.emit(subjects.items(partitionOf(r.i, P)), r, recordBytes(r)),
    progress: (wm, out) => out.setProgress(wm),
    dlq: ({ msg, reason }, out) =>
      out.raw(
        subjects.dlqParse,
        msg.data,
        {
          ...deadLetterHeaders(msg.headers),
          "Reco-Reason": reason,
          "Reco-Subject": msg.subject,
          "Reco-Seq": String(msg.seq),
        },
        `dlq.parse.${msg.seq}`,
      ),
    broadcast: (_wm, out) => {
      for (let p = 0; p < P; p++) {
        out.touch(subjects.parse(p));
        out.touch(subjects.items(p));
      }
    },
    // Every user partition learns where event time jumped without an event, with its next hop.
    idle: (m, out) => {
      for (let p = 0; p < P; p++) out.touch(subjects.parse(p), [m.s, m.progress]);
    },
    marker: (m, out) => {
      if (markerKey === undefined) return; // parse writes none without a key
      const data = enc.encode(JSON.stringify(m));
      const headers = { [IDLE_SIGNATURE_HEADER]: signIdleMarker(markerKey, data) };
      out.raw(IDLE_SUBJECT, data, headers, `idle.${m.after}`);
    },
  }),
  // The candidate source stages (RANKER=blend) have no outputs but co-visitation's pairs and
  // the collaborative rows' changes for the trainer: serving reads their state.
  history: (p: number): PortTopology<typeof historyStage.ports> => {
    // One subject string per item partition, made once: a record names one, and the outputs
    // find its buffer by it (a string made per record was hashed again per record).
    const to: string[] = [];
    return {
      pairs: ({ q, rec }, out) => out.emit((to[q] ??= subjects.pairs(q, p)), rec, pairBytes(rec)),
    };
  },
  collaborative: (p: number): MergedTopology<typeof collaborativeStage.ports> => ({
    rows: (r, out) => out.emit(subjects.collab(p), r, rowsRecordBytes(r)),
  }),
  watermark: (p: number, counters?: LateCounter): PortTopology<typeof watermarkStage.ports> => ({
    window: subjects.watermark(p),
    late: {
      batch: (lates, out) => {
        for (const l of lates) sendLate(out, "watermark", "user", l.watermark, l.event);
        counters?.late("watermark", lates.length, "user");
      },
    },
  }),
  window: (p: number): PortTopology<typeof windowStage.ports> => ({ window: subjects.window(p) }),
  interestRanking: (p: number): PortTopology<typeof interestStage.ports> => ({
    profiles: subjects.interestRanking(p),
  }),
  popularity: (counters?: LateCounter): PortTopology<typeof popularityStage.ports> => ({
    table: (row, out) => out.kvPut(BUCKETS.popularity, kvKeyOf(row.item), row),
    heartbeat: (row, out) => out.kvPut(BUCKETS.popularity, POPULARITY_HEARTBEAT_KEY, row),
    late: (l, out) => {
      sendLate(out, "popularity", "popularity", l.watermark, l.event);
      counters?.late("popularity", 1, "popularity");
    },
  }),
  catalogue: {
    learned: ({ item, ...fields }, out) =>
      out.kvPut(BUCKETS.catalogue, catalogueKey("l", item), fields),
  } satisfies PortTopology<typeof catalogueStage.ports>,
  catalogueUpsert: {
    explicit: ({ item, ...fields }, out) =>
      out.kvPut(BUCKETS.catalogue, catalogueKey("x", item), fields),
    dlq: ({ msg, reason }, out) =>
      out.raw(
        subjects.dlqItems,
        msg.data,
        {
          ...deadLetterHeaders(msg.headers),
          "Reco-Reason": reason,
          "Reco-Subject": msg.subject,
          "Reco-Seq": String(msg.seq),
        },
        `dlq.items.${msg.seq}`,
      ),
  } satisfies PortTopology<typeof catalogueUpsertStage.ports>,
  trending: (q: number, counters?: LateCounter): PortTopology<typeof trendingStage.ports> => ({
    late: {
      batch: (lates, out) => {
        const n = { "1h": 0, "24h": 0 } as Record<string, number>;
        for (const l of lates) {
          const path = l.reason.slice(l.reason.indexOf(":") + 1); // behind_watermark:<kind>
          sendLate(out, "trending", path, l.watermark, l.event);
          n[path] = (n[path] ?? 0) + 1;
        }
        for (const [path, k] of Object.entries(n)) if (k > 0) counters?.late("trending", k, path);
      },
    },
    parts: (p, out) => out.kvPut(TRENDING_BUCKET, `${p.kind}.${p.start}.${q}`, p),
    heartbeat: (h, out) => out.kvPut(TRENDING_BUCKET, `wm.${q}`, h),
  }),
};
