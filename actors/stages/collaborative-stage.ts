import { map, type Observable } from "rxjs";
import {
  defineStage,
  port,
  type InputBatch,
  type StageContext,
  type StateMap,
  type StateMaps,
} from "../../runtime/index.js";
import { partitionOf, type ParsedRecord } from "../contract/index.js";
import type { RatingRow, KeyStore, RowsDelta, SourcePreset } from "../sources/index.js";
import {
  createCollaborativeRows,
  deltaChunks,
  type CollaborativeRows,
  sourceEventOf,
  NO_POINTS,
  partCrossings,
  type Crossing,
  type PartPoints,
  ratingRowCodec,
} from "../sources/index.js";
import type { ModelKind } from "./recommender-trainer.js";

/**
 * The collaborative source as a stage per user partition (DESIGN §3.7, RANKER=blend): each
 * `collaborative/<p>` keeps the interaction rows of its partition's users (what ALS trains on,
 * and what a user's vector is folded in from when they are served), fed its partition's parse
 * hops, and finds its crossings of the training points (sources/collaborative-points.ts: the
 * same points in every partition, whatever the hops' batching and interleaving). At each
 * crossing it sends the trainer (`collaborative-trainer/0`, collaborative-trainer.ts) what
 * changed in its rows since its last one, then the crossing, on `reco.collab.<p>`: the trainer
 * keeps a copy of every partition's rows (sources/collaborative-copy.ts), so the partitions run
 * wherever their units run and keep no marks.
 *
 * State of a partition: its users' rows (implicit, explicit) and where each user and item was
 * first added, and its bookkeeping of points. What changed since its last crossing is tracked in
 * memory (a restored partition finds it in its rows' stamps: als-matrix.ts `changesSince`).
 */
export interface CollaborativeStageSettings {
  preset: SourcePreset;
  /** Event time between trainings (ms). */
  retrainMs: number;
  partition: number;
}

/** An idle marker parse applied, among a partition's records (merged-input.ts partitionInput). */
export interface IdleMark {
  s: number;
  /** The progress it moved to. */
  idle: number;
}

export type CollaborativeRecord = ParsedRecord | IdleMark;

/** An idle marker: it moves the partition's clock (and may cross a point), never its rows. */
export const isIdleMark = (r: CollaborativeRecord): r is IdleMark => "idle" in r;

const KINDS = ["implicit", "explicit"] as const;

/** One partition's rows, as serving reads them. */
export interface CollaborativePart {
  rows: CollaborativeRows;
  /** Events fed; EVENTS sequence of the newest (-1: none). */
  fed(): number;
  seq(): number;
}

export interface CollaborativePartView {
  part(): CollaborativePart;
}

/**
 * What a partition sends the trainer on `reco.collab.<p>`, in order, `s` counting them: at each
 * crossing, its rows' changes of a kind since its last (`k`, `d`: in chunks, a hop message has a
 * size limit), then the crossing (`x`).
 */
export type RowsRecord =
  { s: number; p: number; k: ModelKind; d: RowsDelta } | { s: number; p: number; x: Crossing };

/** The bytes of a chunk of changes, at most (hop messages are cut at half of max_payload). */
const CHUNK_BYTES = 128 * 1024;

/**
 * Rating rows stored as MessagePack bytes (rating-row-bytes.ts) whose full scans, a training's
 * read of every row, leave them bytes: `entries` peeks, where `get` keeps what it decodes for
 * the next snapshots (a plain map's rows were ~300 B of heap per user at 100k users, bench step
 * 7's heap snapshot; every row decoded at once would be that again, at each training).
 */
export function ratingRows(st: StateMaps, name: string): KeyStore<RatingRow> {
  const m: StateMap<RatingRow> = st.map<RatingRow>(name, { codec: ratingRowCodec });
  const peek = (k: string) => (m.peek ? m.peek(k) : m.get(k));
  return {
    get: (k) => m.get(k),
    peek,
    set: (k, v) => m.set(k, v),
    delete: (k) => m.delete(k),
    get size() {
      return m.size;
    },
    keys: () => m.keys(),
    *entries() {
      for (const k of m.keys()) {
        const v = peek(k);
        if (v !== undefined) yield [k, v];
      }
    },
  };
}

/** The state maps of a partition's rows (serving replicas read them by these names). */
export const COLLABORATIVE_MAPS = {
  rows: "user-rows",
  items: "user-items",
  first: "user-first",
  xrows: "user-xrows",
  xitems: "user-xitems",
  xfirst: "user-xfirst",
} as const;

/**
 * Maps of layouts before: every user's rows in collaborative/0, then each partition's marks and
 * the trainer in collaborative/0. Dropped: the models rebuild from new events.
 */
const OLD_MAPS = [
  "points",
  "rows",
  "xrows",
  "items",
  "xitems",
  "marked",
  "xmarked",
  "model",
  "user-marks",
  "user-xmarks",
  "trainer",
  "trained-model",
  "versions",
];

/**
 * A partition's rows over the state maps (also a serving replica's, from a snapshot); with
 * `changesSince` (the stage's), tracking what changed since its last crossing, which was then.
 */
export function collaborativeRowsOf(
  st: StateMaps,
  preset: SourcePreset,
  changesSince?: number,
): CollaborativeRows {
  return createCollaborativeRows(
    preset,
    {
      implicit: {
        rows: ratingRows(st, COLLABORATIVE_MAPS.rows),
        items: st.map<number>(COLLABORATIVE_MAPS.items),
        firstSeen: st.map<number[]>(COLLABORATIVE_MAPS.first),
      },
      explicit: {
        rows: ratingRows(st, COLLABORATIVE_MAPS.xrows),
        items: st.map<number>(COLLABORATIVE_MAPS.xitems),
        firstSeen: st.map<number[]>(COLLABORATIVE_MAPS.xfirst),
      },
    },
    // A partition builds no matrix (the trainer's copy does): rows only.
    { hold: false, ...(changesSince === undefined ? {} : { changesSince }) },
  );
}

/** Serving's read of a user's rows: their partition's (`rowsOf(p)`), wherever that part runs. */
export function routedRows(
  rowsOf: (p: number) => CollaborativeRows | undefined,
  partitions: number,
) {
  const of = (user: string) => rowsOf(partitionOf(user, partitions));
  return (kind: ModelKind) => ({
    changedAt: (user: string) => of(user)?.of(kind).changedAt(user) ?? -1,
    row: (user: string) => of(user)?.of(kind).row(user),
  });
}

export const collaborativeStage = defineStage({
  name: "collaborative",
  input: port<CollaborativeRecord>(),
  ports: { rows: port<RowsRecord>() },
  create: (ctx: StageContext<CollaborativeStageSettings>) => {
    const s = ctx.settings;
    const st = ctx.state;
    for (const name of OLD_MAPS) {
      const m = st.map(name);
      for (const k of [...m.keys()]) m.delete(k);
    }
    const pointsMap = st.map<PartPoints>("part-points");
    const stored = pointsMap.get("t");
    // A partition of the layout before (the trainer read its rows in process) sends them all
    // at its next crossing, so that the trainer's copy starts from every row.
    const p: PartPoints = {
      ...NO_POINTS,
      ...stored,
      out: stored?.out ?? 0,
      taken: stored?.out === undefined ? -1 : stored.taken,
    };
    delete (p as { crossings?: unknown }).crossings; // kept by the layout before
    const rows = collaborativeRowsOf(st, s.preset, p.taken);
    /**
     * The batch's records for the trainer, let go once returned: a crossing's hold a copy of
     * every row changed since the last one, and a quiet partition's next batch may be long in
     * coming.
     */
    let out: RowsRecord[] = [];
    const crossings = partCrossings(p, s.retrainMs, (x) => {
      const changes = rows.takeChanges();
      p.taken = p.s;
      for (const k of KINDS)
        for (const d of deltaChunks(changes[k], CHUNK_BYTES))
          out.push({ s: ++p.out, p: s.partition, k, d });
      out.push({ s: ++p.out, p: s.partition, x });
    });

    const part: CollaborativePart = { rows, fed: () => p.n, seq: () => p.s };

    const operator = (batches$: Observable<InputBatch<CollaborativeRecord>>) =>
      batches$.pipe(
        map((b) => {
          out = [];
          for (const r of b.records) {
            if (isIdleMark(r)) {
              crossings.idle(r.idle);
              continue;
            }
            crossings.advance(r.wb);
            rows.add(sourceEventOf(r, s.preset), r.s);
            crossings.fed(r.s);
            crossings.advance(r.ts);
          }
          if (b.progress.to >= 0) crossings.advance(b.progress.to);
          pointsMap.set("t", { ...p });
          const sent = out;
          out = [];
          return sent.length > 0 ? { rows: sent } : {};
        }),
      );

    return { operator, view: { part: () => part } };
  },
});
