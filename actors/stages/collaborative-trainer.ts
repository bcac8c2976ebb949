import { finalize, map, type Observable } from "rxjs";
import {
  defineStage,
  port,
  type InputBatch,
  type StageContext,
  type StateMaps,
} from "../../runtime/index.js";
import {
  readStoredModel,
  storeModel,
  type StoredModel,
  createCollaborativeServing,
  createRowsCopy,
  gatherRatings,
  type CollaborativeServing,
  type CollaborativeSettings,
  crossingAt,
  judge,
  keepFrom,
  NO_TRAINER,
  type Crossing,
  type PointState,
  type RowsCopy,
  type SourcePreset,
  type TrainerPoints,
} from "../sources/index.js";
import { createModelVersions, type ModelVersion } from "../quality/index.js";
import {
  ratingRows,
  routedRows,
  type CollaborativePart,
  type RowsRecord,
} from "./collaborative-stage.js";
import {
  createTrainer,
  type ModelKind,
  type TrainFn,
  type Trainer,
} from "./recommender-trainer.js";

/**
 * The collaborative source's trainer and serving (DESIGN §3.7, RANKER=blend): one instance,
 * `collaborative-trainer/0`, fed what every user partition's `collaborative/<p>` sends at its
 * crossings (`reco.collab.<p>`: the changes of its rows, then the crossing). It keeps a copy of
 * each partition's rows, marked at its crossings (sources/collaborative-copy.ts), and judges the
 * points from the partitions' crossings as one instance fed everything in input order would
 * (sources/collaborative-points.ts). When a point is due, the matrix of that point is gathered
 * from the copies (als-gather.ts: users and items in first-input order), trained in a worker
 * (recommender-trainer.ts, seeded) and served once it is there, over every partition's current
 * rows that run in this process (serving never waits). So the partitions run wherever their
 * units run; ALS training stays one job, off the event path.
 *
 * State: the copies' rows and crossings; the points judged and the pending one; the models with
 * the point they were trained at, and their versions. A restart trains the pending point again,
 * from the copies' marks, when its model was not stored.
 */
export interface CollaborativeTrainerSettings {
  preset: SourcePreset;
  sources: CollaborativeSettings;
  train: TrainFn;
  partitions: number;
  /** Partition p's part in this process, for serving (undefined: not running here). */
  part: (p: number) => CollaborativePart | undefined;
  log?: (obj: object, msg: string) => void;
  /** Delay of a restored trainer's training of its pending point (default 5 s, see below). */
  restoreTrainDelayMs?: number;
  /** Where the served models are kept apart from this snapshot (see ModelShelf). */
  shelf?: ModelShelf;
}

/**
 * The served models kept apart from the trainer's snapshot, one per kind (its stored form, with
 * its input point: als-model-bytes.ts). A restart serves them before the trainer's state has
 * loaded: its copies of every partition's rows are most of a restart's reading (43 MiB of
 * 270 MiB with 1M users), and the blend's first right answers waited for them. A model on the
 * shelf is the one its point trains (training is seeded), so a restored trainer takes one newer
 * than its own instead of training that point again.
 */
export interface ModelShelf {
  get(kind: ModelKind): Uint8Array | undefined;
  /** Keeps `stored` as the kind's served model (written in the background). */
  put(kind: ModelKind, stored: Uint8Array): void;
}

export interface CollaborativeView {
  /** The served models over every partition's rows here. */
  collaborative(): CollaborativeServing;
  /** Events fed to the partitions here; the newest point; the served models' points. */
  status(): {
    events: number;
    trainAt: number;
    models: Partial<Record<ModelKind, number>>;
  };
  /** True while a training runs or waits. */
  training(): boolean;
  /** The trained models' versions, newest first (actors/quality/model-versions.ts). */
  versions(): ModelVersion[];
}

const KINDS = ["implicit", "explicit"] as const;

/** The trainer's one instance. */
export const COLLABORATIVE_TRAINER = "collaborative-trainer/0";

/** The trainer's maps that serving replicas read. */
export const TRAINER_MAPS = { model: "trained-model" } as const;

/**
 * A restored trainer trains its pending point this long after it starts: building that matrix
 * reads every user's row, and run at once it held the restarted process's loop before the
 * blend's other sources had loaded (bench/restart-ab.ts: right answers 19.9 s, against
 * 7.9-11.8 s with this delay). The model served meanwhile is the stored one.
 */
const RESTORE_TRAIN_DELAY_MS = 5_000;

/** The state maps of the trainer's copy of partition p's rows. */
export const copyMaps = (p: number) =>
  ({
    rows: `p${p}-rows`,
    items: `p${p}-items`,
    marks: `p${p}-marks`,
    first: `p${p}-first`,
    xrows: `p${p}-xrows`,
    xitems: `p${p}-xitems`,
    xmarks: `p${p}-xmarks`,
    xfirst: `p${p}-xfirst`,
  }) as const;

/** The trainer's copy of partition p's rows over its state maps. */
function rowsCopyOf(st: StateMaps, preset: SourcePreset, p: number): RowsCopy {
  const m = copyMaps(p);
  const crossings = st.map<Crossing[]>("crossings");
  return createRowsCopy(
    preset,
    {
      implicit: {
        rows: ratingRows(st, m.rows),
        items: st.map<number>(m.items),
        marked: st.map(m.marks),
        firstSeen: st.map<number[]>(m.first),
      },
      explicit: {
        rows: ratingRows(st, m.xrows),
        items: st.map<number>(m.xitems),
        marked: st.map(m.xmarks),
        firstSeen: st.map<number[]>(m.xfirst),
      },
    },
    { get: () => crossings.get(`${p}`), set: (list) => crossings.set(`${p}`, list) },
  );
}

/**
 * The shelf's models served over the partitions' rows here, as the trainer's view would serve
 * them once restored (undefined: no model on the shelf). For the time before the trainer runs.
 */
export function shelfView(
  s: Pick<CollaborativeTrainerSettings, "sources" | "partitions" | "part" | "shelf">,
): CollaborativeView | undefined {
  const serving = createCollaborativeServing(
    s.sources,
    routedRows((p) => s.part(p)?.rows, s.partitions),
  );
  const models: Partial<Record<ModelKind, number>> = {};
  for (const kind of KINDS) {
    const shelved = s.sources[kind] && s.shelf?.get(kind);
    const m = shelved && readStoredModel(shelved);
    if (!m || m.legacy) continue;
    serving.setModel(kind, m.model, m.at);
    models[kind] = m.at;
  }
  if (Object.keys(models).length === 0) return undefined;
  return {
    collaborative: () => serving,
    status: () => {
      let events = 0;
      for (let p = 0; p < s.partitions; p++) events += s.part(p)?.fed() ?? 0;
      return { events, trainAt: Math.max(...Object.values(models)), models: { ...models } };
    },
    training: () => false,
    versions: () => [],
  };
}

export const collaborativeTrainerStage = defineStage({
  name: "collaborative-trainer",
  input: port<RowsRecord>(),
  ports: {},
  create: (ctx: StageContext<CollaborativeTrainerSettings>) => {
    const s = ctx.settings;
    const st = ctx.state;
    const copies = Array.from({ length: s.partitions }, (_, p) => rowsCopyOf(st, s.preset, p));
    const pointsMap = st.map<TrainerPoints>("trainer");
    // One key per kind: the served model's bytes (item factors, no user factors), which the
    // served model's factors are views on (als-model.ts StoredModel).
    const stored = st.map<StoredModel>(TRAINER_MAPS.model);
    const versions = createModelVersions(st.map<ModelVersion>("versions"));
    let t: TrainerPoints = pointsMap.get("t") ?? NO_TRAINER;
    const serving = createCollaborativeServing(
      s.sources,
      routedRows((p) => s.part(p)?.rows, s.partitions),
    );
    const kinds = KINDS.filter((k) => s.sources[k]);

    const trainer: Trainer = createTrainer({
      train: s.train,
      onModel(kind, at, m) {
        // An older point's model never replaces a newer one's.
        if ((serving.model(kind)?.at ?? -1) > at) return;
        const kept = storeModel(m, at);
        serving.setModel(kind, kept.model, at);
        stored.set(kind, kept.stored);
        s.shelf?.put(kind, kept.stored);
        versions.trained(kind, at, kept.model);
        settlePending();
      },
      onError: (kind, err) => s.log?.({ kind, err: String(err) }, "ALS training failed"),
    });

    /** The served model's point of `kind` (-1: none yet). */
    const servedAt = (kind: ModelKind) => serving.model(kind)?.at ?? -1;
    /** The pending point is done once every kind serves a model of it or of a later point. */
    function settlePending() {
      if (t.pending && kinds.every((k) => servedAt(k) >= t.pending!.at)) {
        t = { seen: t.seen, at: t.at };
        pointsMap.set("t", t);
        prune();
      }
    }

    /** The matrix of point `d`, gathered when its training starts (undefined: a mark is gone). */
    const ratingsOf = (kind: ModelKind, d: PointState & { at: number }) => () => {
      const gathered = [];
      for (const copy of copies) {
        const cr = crossingAt(copy.crossings(), d);
        const ratings = cr && copy.rows.of(kind).buildAt(cr.c);
        if (!ratings) {
          s.log?.({ kind, at: d.at }, "ALS: the matrix of the newest training point is lost");
          return undefined;
        }
        const b = copy.rows.of(kind);
        gathered.push({ ratings, userFirst: b.userFirst, itemFirst: b.itemFirst });
      }
      return gatherRatings(gathered);
    };

    const prune = () => {
      for (const copy of copies) copy.keep(keepFrom(copy.crossings(), t));
    };

    const evaluate = () => {
      const judged = judge(
        t,
        copies.map((copy) => copy.crossings()),
      );
      const newest = judged.due[judged.due.length - 1];
      const moved = judged.t.seen.e !== t.seen.e || judged.t.seen.i !== t.seen.i;
      t = judged.t;
      // A point whose model is served already (taken from the shelf at a restart) is not
      // trained again.
      const due = newest && kinds.filter((kind) => servedAt(kind) < newest.at);
      if (newest && due && due.length > 0) {
        t = { ...t, pending: { e: newest.e, i: newest.i, at: newest.at } };
        for (const kind of due) versions.submitted(kind, newest.at, newest.progress);
        for (const kind of due)
          trainer.submit(kind, newest.at, ratingsOf(kind, newest), s.sources[kind]!);
      }
      if (moved) pointsMap.set("t", t);
      prune();
    };

    // Restore: the stored models (or the shelf's, when newer), and the pending point's training
    // again when its model was not kept before the restart.
    function* restore(): Iterator<void> {
      for (const kind of kinds) {
        const saved = stored.get(kind);
        let m = saved && readStoredModel(saved);
        // A model stored in an earlier form (with every user's factors: ~256 B a user) is kept
        // in the served form from the next snapshot on; its bytes go with the key's old value.
        if (m && m.legacy) {
          const kept = storeModel(m.model, m.at);
          stored.set(kind, kept.stored);
          m = { ...m, model: kept.model };
        }
        const shelved = s.shelf?.get(kind);
        const onShelf = shelved && readStoredModel(shelved);
        if (onShelf && !onShelf.legacy && onShelf.at > (m?.at ?? -1)) {
          // Trained and shelved after the snapshot was written.
          stored.set(kind, shelved);
          versions.trained(kind, onShelf.at, onShelf.model);
          m = onShelf;
        } else if (m && (!onShelf || onShelf.at < m.at))
          s.shelf?.put(kind, stored.get(kind) as Uint8Array);
        if (m) serving.setModel(kind, m.model, m.at);
        yield;
      }
      settlePending();
      const pending = t.pending;
      if (pending)
        for (const kind of kinds)
          if (servedAt(kind) < pending.at)
            trainer.submit(
              kind,
              pending.at,
              ratingsOf(kind, pending),
              s.sources[kind]!,
              s.restoreTrainDelayMs ?? RESTORE_TRAIN_DELAY_MS,
            );
      evaluate();
    }

    const operator = (batches$: Observable<InputBatch<RowsRecord>>) =>
      batches$.pipe(
        map((b) => {
          for (const r of b.records) {
            const copy = copies[r.p];
            if (!copy) continue;
            if ("x" in r) copy.cross(r.x);
            else copy.apply(r.k, r.d);
          }
          if (b.records.length > 0) evaluate();
          return {};
        }),
        finalize(() => trainer.stop()),
      );

    const view: CollaborativeView = {
      collaborative: () => serving,
      status: () => {
        const models: Partial<Record<ModelKind, number>> = {};
        for (const kind of KINDS) {
          const m = serving.model(kind);
          if (m) models[kind] = m.at;
        }
        let events = 0;
        for (let p = 0; p < s.partitions; p++) events += s.part(p)?.fed() ?? 0;
        return { events, trainAt: t.at, models };
      },
      training: () => trainer.busy(),
      versions: () => versions.list(),
    };
    return { operator, view, restore: restore() };
  },
});
