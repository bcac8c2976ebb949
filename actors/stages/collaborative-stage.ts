import { finalize, map, type Observable } from "rxjs";
import {
  defineStage,
  port,
  type InputBatch,
  type StageContext,
  type StateMap,
  type StateMaps,
} from "../../runtime/index.js";
import { partitionOf, type ParsedRecord } from "../contract/index.js";
import type { RatingRow, KeyStore, SourcePreset } from "../sources/index.js";
import {
  readStoredModel,
  storeModel,
  type StoredModel,
  createCollaborativeRows,
  createCollaborativeServing,
  gatherRatings,
  type CollaborativeRows,
  type CollaborativeServing,
  type CollaborativeSettings,
  sourceEventOf,
  crossingAt,
  judge,
  keepFrom,
  NO_POINTS,
  NO_TRAINER,
  partCrossings,
  type Crossing,
  type PartPoints,
  type PointState,
  type TrainerPoints,
} from "../sources/index.js";
import { createModelVersions, type ModelVersion } from "../quality/index.js";
import {
  createTrainer,
  type ModelKind,
  type TrainFn,
  type Trainer,
} from "./recommender-trainer.js";

/**
 * The collaborative source as a stage per user partition (DESIGN §3.7, RANKER=blend): each
 * `collaborative/<p>` keeps the interaction rows of its partition's users (what ALS trains on,
 * and what a user's vector is folded in from when they are served), fed its partition's parse
 * hops, and finds its crossings of the training points (sources/collaborative-points.ts: the
 * same points in every partition, whatever the hops' batching and interleaving). Partition 0
 * also holds the trainer: when every partition has crossed a point and it is due, the matrix of
 * that point is gathered from the partitions' marked rows (als-gather.ts: users partition by
 * partition, items in first-input order), trained in a worker (recommender-trainer.ts, seeded)
 * and served once it is there, over every partition's current rows: serving never waits.
 *
 * The trainer reads the partitions in this process, so the collaborative stages of a pipeline
 * run in one process (the cluster places them in unit p0).
 *
 * State of a partition: its users' rows (implicit, explicit), where each user and item was first
 * added, the marks of its crossings kept; of the trainer (partition 0): the points judged and the
 * pending one, the models with the point they were trained at, and their versions. A restart
 * trains the pending point again, from the partitions' marks, when its model was not stored.
 */
export interface CollaborativeStageSettings {
  preset: SourcePreset;
  sources: CollaborativeSettings;
  /** Event time between trainings (ms). */
  retrainMs: number;
  train: TrainFn;
  partition: number;
  partitions: number;
  /** Partition p's part in this process (undefined: not running here). */
  part: (p: number) => CollaborativePart | undefined;
  /** Called after every batch a partition takes: the trainer judges the points crossed. */
  changed?: () => void;
  log?: (obj: object, msg: string) => void;
  /** Delay of a restored trainer's training of its pending point (default 5 s, see below). */
  restoreTrainDelayMs?: number;
}

/** An idle marker parse applied, among a partition's records (merged-input.ts partitionInput). */
export interface IdleMark {
  s: number;
  /** The progress it moved to. */
  idle: number;
}

export type CollaborativeRecord = ParsedRecord | IdleMark;

const isIdle = (r: CollaborativeRecord): r is IdleMark => "idle" in r;

/** One partition's rows and crossings, as the trainer and serving read them. */
export interface CollaborativePart {
  rows: CollaborativeRows;
  crossings(): readonly Crossing[];
  /** Forgets the crossings (and their marks) below mark `c`. */
  keep(c: number): void;
  /** Events fed; EVENTS sequence of the newest (-1: none). */
  fed(): number;
  seq(): number;
}

export interface CollaborativePartView {
  part(): CollaborativePart;
}

export interface CollaborativeView extends CollaborativePartView {
  /** The served models over every partition's rows (partition 0's instance). */
  collaborative(): CollaborativeServing;
  /** Events fed over the partitions here; the newest point; the served models' points. */
  status(): {
    events: number;
    trainAt: number;
    models: Partial<Record<ModelKind, number>>;
  };
  /** True while a training runs or waits. */
  training(): boolean;
  /** The trained models' versions, newest first (actors/quality/model-versions.ts). */
  versions(): ModelVersion[];
  /** Judges the points the partitions have crossed (after any partition's batch). */
  evaluate(): void;
}

const KINDS = ["implicit", "explicit"] as const;
/** How often the trainer judges the partitions' crossings without a batch to prompt it. */
const EVALUATE_EVERY_MS = 1_000;

/**
 * A restored trainer trains its pending point this long after it starts: building that matrix
 * reads every user's row, and run at once it held the restarted process's loop before the
 * blend's other sources had loaded (bench/restart-ab.ts: right answers 19.9 s, against
 * 7.9-11.8 s with this delay). The model served meanwhile is the stored one.
 */
const RESTORE_TRAIN_DELAY_MS = 5_000;

/**
 * Rating rows as a text map (see below) whose full scans, a training's read of every row, leave
 * them bytes: `entries` peeks, where `get` keeps what it decodes for the next snapshots (a plain
 * map's rows were ~300 B of heap per user at 100k users, bench step 7's heap snapshot; every row
 * decoded at once would be that again, at each training).
 */
export function ratingRows(st: StateMaps, name: string): KeyStore<RatingRow> {
  const m: StateMap<RatingRow> = st.map<RatingRow>(name, { text: true });
  const peek = (k: string) => (m.peek ? m.peek(k) : m.get(k));
  return {
    get: (k) => m.get(k),
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
  marks: "user-marks",
  first: "user-first",
  xrows: "user-xrows",
  xitems: "user-xitems",
  xmarks: "user-xmarks",
  xfirst: "user-xfirst",
  model: "trained-model",
} as const;

/** Maps of the one-instance layout before (every user's rows in collaborative/0): dropped. */
const OLD_MAPS = ["points", "rows", "xrows", "items", "xitems", "marked", "xmarked", "model"];

/** A partition's rows over the state maps (also a serving replica's, from a snapshot). */
export function collaborativeRowsOf(st: StateMaps, preset: SourcePreset): CollaborativeRows {
  return createCollaborativeRows(preset, {
    implicit: {
      rows: ratingRows(st, COLLABORATIVE_MAPS.rows),
      items: st.map<number>(COLLABORATIVE_MAPS.items),
      marked: st.map(COLLABORATIVE_MAPS.marks),
      firstSeen: st.map<number[]>(COLLABORATIVE_MAPS.first),
    },
    explicit: {
      rows: ratingRows(st, COLLABORATIVE_MAPS.xrows),
      items: st.map<number>(COLLABORATIVE_MAPS.xitems),
      marked: st.map(COLLABORATIVE_MAPS.xmarks),
      firstSeen: st.map<number[]>(COLLABORATIVE_MAPS.xfirst),
    },
  });
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
  ports: {},
  create: (ctx: StageContext<CollaborativeStageSettings>) => {
    const s = ctx.settings;
    const st = ctx.state;
    for (const name of OLD_MAPS) {
      const m = st.map(name);
      for (const k of [...m.keys()]) m.delete(k);
    }
    const pointsMap = st.map<PartPoints>("part-points");
    const rows = collaborativeRowsOf(st, s.preset);
    const p: PartPoints = structuredClone(pointsMap.get("t") ?? NO_POINTS);
    const crossings = partCrossings(p, s.retrainMs, (c) => rows.mark(c));

    const part: CollaborativePart = {
      rows,
      crossings: () => p.crossings,
      keep(c) {
        if (p.crossings.length === 0 || p.crossings[0]!.c >= c) return;
        p.crossings = p.crossings.filter((cr) => cr.c >= c);
        rows.dropBefore(c);
        pointsMap.set("t", p);
      },
      fed: () => p.n,
      seq: () => p.s,
    };

    const trainer = s.partition === 0 ? createTrainerPart(ctx, s) : undefined;

    const operator = (batches$: Observable<InputBatch<CollaborativeRecord>>) =>
      batches$.pipe(
        map((b) => {
          for (const r of b.records) {
            if (isIdle(r)) {
              crossings.idle(r.idle);
              continue;
            }
            crossings.advance(r.wb);
            rows.add(sourceEventOf(r, s.preset), r.s);
            crossings.fed(r.s);
            crossings.advance(r.ts);
          }
          if (b.progress.to >= 0) crossings.advance(b.progress.to);
          pointsMap.set("t", p);
          s.changed?.();
          return {};
        }),
        finalize(() => trainer?.stop()),
      );

    const view = trainer ? { part: () => part, ...trainer.view } : { part: () => part };
    return trainer ? { operator, view, restore: trainer.restore() } : { operator, view };
  },
});

/** The trainer and serving of partition 0's instance (see the top of this file). */
function createTrainerPart(
  ctx: StageContext<CollaborativeStageSettings>,
  s: CollaborativeStageSettings,
) {
  const st = ctx.state;
  const pointsMap = st.map<TrainerPoints>("trainer");
  // One key per kind: the served model's bytes (item factors, no user factors), which the
  // served model's factors are views on (als-model.ts StoredModel).
  const stored = st.map<StoredModel>(COLLABORATIVE_MAPS.model);
  const versions = createModelVersions(st.map<ModelVersion>("versions"));
  let t: TrainerPoints = pointsMap.get("t") ?? NO_TRAINER;
  const serving = createCollaborativeServing(
    s.sources,
    routedRows((p) => s.part(p)?.rows, s.partitions),
  );
  const kinds = KINDS.filter((k) => s.sources[k]);
  const partitions = Array.from({ length: s.partitions }, (_, p) => p);
  const parts = () => partitions.map((p) => s.part(p));

  const trainer: Trainer = createTrainer({
    train: s.train,
    onModel(kind, at, m) {
      // An older point's model never replaces a newer one's.
      if ((serving.model(kind)?.at ?? -1) > at) return;
      const kept = storeModel(m, at);
      serving.setModel(kind, kept.model, at);
      stored.set(kind, kept.stored);
      versions.trained(kind, at, kept.model);
      if (t.pending && kinds.every((k) => (serving.model(k)?.at ?? -1) >= t.pending!.at)) {
        t = { seen: t.seen, at: t.at };
        pointsMap.set("t", t);
        prune();
      }
    },
    onError: (kind, err) => s.log?.({ kind, err: String(err) }, "ALS training failed"),
  });

  /** The matrix of point `d`, gathered when its training starts (undefined: a part is missing). */
  const ratingsOf = (kind: ModelKind, d: PointState & { at: number }) => () => {
    const all = parts();
    const gathered = [];
    for (const part of all) {
      const cr = part && crossingAt(part.crossings(), d);
      const ratings = cr && part.rows.of(kind).buildAt(cr.c);
      if (!ratings) {
        s.log?.({ kind, at: d.at }, "ALS: the matrix of the newest training point is lost");
        return undefined;
      }
      const b = part.rows.of(kind);
      gathered.push({ ratings, userFirst: b.userFirst, itemFirst: b.itemFirst });
    }
    return gatherRatings(gathered);
  };

  const prune = () => {
    for (const part of parts()) part?.keep(keepFrom(part.crossings(), t));
  };

  const evaluate = () => {
    const all = parts();
    const judged = judge(
      t,
      all.map((part) => part?.crossings()),
    );
    const newest = judged.due[judged.due.length - 1];
    const moved = judged.t.seen.e !== t.seen.e || judged.t.seen.i !== t.seen.i;
    t = judged.t;
    if (newest) {
      t = { ...t, pending: { e: newest.e, i: newest.i, at: newest.at } };
      for (const kind of kinds) versions.submitted(kind, newest.at, newest.progress);
      for (const kind of kinds)
        trainer.submit(kind, newest.at, ratingsOf(kind, newest), s.sources[kind]!);
    }
    if (moved) pointsMap.set("t", t);
    prune();
  };

  // Restore: the stored models, and the pending point's training again when its model was not
  // stored before the restart.
  function* restore(): Iterator<void> {
    for (const kind of kinds) {
      const saved = stored.get(kind);
      let m = saved && readStoredModel(saved);
      // A model stored in an earlier form (with every user's factors: ~256 B a user) is kept in
      // the served form from the next snapshot on; its bytes go with the key's old value.
      if (m && m.legacy) {
        const kept = storeModel(m.model, m.at);
        stored.set(kind, kept.stored);
        m = { ...m, model: kept.model };
      }
      if (m) serving.setModel(kind, m.model, m.at);
      yield;
    }
    const pending = t.pending;
    if (pending)
      for (const kind of kinds)
        if (serving.model(kind)?.at !== pending.at)
          trainer.submit(
            kind,
            pending.at,
            ratingsOf(kind, pending),
            s.sources[kind]!,
            s.restoreTrainDelayMs ?? RESTORE_TRAIN_DELAY_MS,
          );
    evaluate();
  }

  const view: Omit<CollaborativeView, "part"> = {
    collaborative: () => serving,
    status: () => {
      const models: Partial<Record<ModelKind, number>> = {};
      for (const kind of KINDS) {
        const m = serving.model(kind);
        if (m) models[kind] = m.at;
      }
      let events = 0;
      for (const part of parts()) events += part?.fed() ?? 0;
      return { events, trainAt: t.at, models };
    },
    training: () => trainer.busy(),
    versions: () => versions.list(),
    evaluate,
  };
  // A partition that starts (or restarts) while the input is quiet takes no batch, so nothing
  // would judge what it had crossed before: judged again every second too (cheap when nothing
  // moved).
  const tick = setInterval(evaluate, EVALUATE_EVERY_MS);
  tick.unref();
  const stop = () => {
    clearInterval(tick);
    trainer.stop();
  };
  return { view, restore, stop };
}
