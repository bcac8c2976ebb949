import { finalize, map, type Observable } from "rxjs";
import {
  defineStage,
  port,
  type InputBatch,
  type StageContext,
  type StateMap,
  type StateMaps,
} from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import type { RatingRow, KeyStore, SourcePreset } from "../sources/index.js";
import {
  readStoredModel,
  storeModel,
  type StoredModel,
  createCollaborative,
  type CollaborativeSettings,
  type CollaborativeSource,
  sourceEventOf,
} from "../sources/index.js";
import { createModelVersions, type ModelVersion } from "../quality/index.js";
import {
  createTrainer,
  type ModelKind,
  type TrainFn,
  type Trainer,
} from "./recommender-trainer.js";

/**
 * The collaborative source as a stage (DESIGN §3.7, RANKER=blend): the interaction matrices ALS
 * trains on, the models, and when to train. One instance, fed every partition's user-path
 * records in EVENTS order (merged-input.ts): rows and items are indexed in first-seen order and
 * training points are judged per record, so both must be the events' own order.
 *
 * State: one key per user (their row: item → summed weight, or latest rating) and per item
 * (first-seen order); the models with the input point they were trained at; the training points.
 * Trainings happen at points of the input, so a replay trains on the same events: when
 * event-time progress enters a new RETRAIN_INTERVAL, and when progress moves on with no record
 * at least IDLE_TIMEOUT_MS past the newest event (an idle marker: the input went quiet). The
 * matrix of the newest point is marked (copy on write, in the state) until its model is there,
 * so a restart from a later snapshot trains that point's matrix again, not the current one. The
 * model of a point is trained in a worker (recommender-trainer.ts, seeded) and served once it is
 * there: serving never waits. Between trainings, users with new events are folded in
 * (sources/collaborative.ts).
 */
export interface CollaborativeStageSettings {
  preset: SourcePreset;
  sources: CollaborativeSettings;
  /** Event time between trainings (ms). */
  retrainMs: number;
  /** A record-less progress jump of at least this much trains (the idle timeout; 0: never). */
  idleMs: number;
  train: TrainFn;
  log?: (obj: object, msg: string) => void;
  /** Delay of a restored instance's training of its untrained point (default 5 s, see below). */
  restoreTrainDelayMs?: number;
}

/** The training bookkeeping (one key, "t"). */
interface Points {
  /** Events fed so far. */
  n: number;
  /** The event count at the newest training point (0: none yet). */
  at: number;
  /** RETRAIN_INTERVAL index of progress at that point. */
  epoch: number;
  /** Newest event time fed. */
  maxTs: number;
  /** EVENTS sequence of the newest record fed (absent in state written before it was kept). */
  s?: number;
  progress: number;
}

export interface CollaborativeView {
  collaborative(): CollaborativeSource;
  /**
   * Events fed; the input point of the newest training and of the models served; `seq`: the
   * EVENTS sequence of the newest record fed (-1: none, or not known since the state's start).
   */
  status(): {
    events: number;
    trainAt: number;
    models: Partial<Record<ModelKind, number>>;
    seq: number;
  };
  /** True while a training runs or waits. */
  training(): boolean;
  /** The trained models' versions, newest first (actors/quality/model-versions.ts). */
  versions(): ModelVersion[];
}

const KINDS = ["implicit", "explicit"] as const;

/**
 * A restored instance trains its snapshot's untrained point this long after it starts: building
 * that matrix parses every user's row (text rows: 4 s of CPU with 1M users at load 9-11), and
 * run at once it held the restarted process's loop for 8.6 s before the blend's other sources
 * had loaded (bench/restart-ab.ts: right answers 19.9 s, against 7.9-11.8 s with this delay).
 * The model served meanwhile is the stored one, as while any training runs; a kill that came
 * after that point's model was stored but before the snapshot that holds it waits these 5 s
 * more for its right answers.
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

export const collaborativeStage = defineStage({
  name: "collaborative",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<CollaborativeStageSettings>) => {
    const s = ctx.settings;
    const st = ctx.state;
    const points = st.map<Points>("points");
    // One key per kind: the served model's bytes (item factors, no user factors), which the
    // served model's factors are views on (als-model.ts StoredModel).
    const stored = st.map<StoredModel>("model");
    // Rows as text maps: a restart indexes their bytes instead of parsing every user's row
    // (1M users: 33 MB of JSON before the blend could answer); a row is parsed when first read.
    const collab = createCollaborative(s.preset, s.sources, {
      implicit: {
        rows: ratingRows(st, "rows"),
        items: st.map<number>("items"),
        marked: st.map("marked"),
      },
      explicit: {
        rows: ratingRows(st, "xrows"),
        items: st.map<number>("xitems"),
        marked: st.map("xmarked"),
      },
    });
    let p: Points = points.get("t") ?? { n: 0, at: 0, epoch: -1, maxTs: -1, progress: -1 };
    const versions = createModelVersions(st.map<ModelVersion>("versions"));

    const trainer: Trainer = createTrainer({
      train: s.train,
      onModel(kind, at, m) {
        // An older point's model never replaces a newer one's.
        if ((collab.model(kind)?.at ?? -1) > at) return;
        const kept = storeModel(m, at);
        collab.setModel(kind, kept.model, at);
        stored.set(kind, kept.stored);
        versions.trained(kind, at, kept.model); // The model's version history
        if (at === p.at) collab.unmark(kind);
      },
      onError: (kind, err) => s.log?.({ kind, err: String(err) }, "ALS training failed"),
    });
    const settingsOf = (kind: ModelKind) => s.sources[kind];
    /**
     * The matrix of the newest point, built when its training starts (the marked matrix: rows
     * changed since the point are copied first), so a point that a newer one supersedes while it
     * waits is never built.
     */
    const ratingsOf = (kind: ModelKind, at: number) => () => {
      const r = collab.ratingsAtMark(kind);
      if (!r) s.log?.({ kind, at }, "ALS: the matrix of the newest training point is lost");
      return r;
    };
    const submit = () => {
      for (const kind of KINDS) if (s.sources[kind]) versions.submitted(kind, p.at, p.progress);
      collab.mark();
      for (const kind of KINDS) {
        const settings = settingsOf(kind);
        if (settings) trainer.submit(kind, p.at, ratingsOf(kind, p.at), settings);
      }
    };

    // Restore: the stored models, and the newest point's training again (from its marked
    // matrix) when its model was not stored before the restart.
    function* restore(): Iterator<void> {
      for (const kind of KINDS) {
        const settings = settingsOf(kind);
        if (!settings) continue;
        const saved = stored.get(kind);
        let m = saved && readStoredModel(saved);
        // A model stored in an earlier form (with every user's factors: ~256 B a user) is kept
        // in the served form from the next snapshot on; its bytes go with the key's old value.
        if (m && m.legacy) {
          const kept = storeModel(m.model, m.at);
          stored.set(kind, kept.stored);
          m = { ...m, model: kept.model };
        }
        if (m) collab.setModel(kind, m.model, m.at);
        yield;
        if (p.at === 0 || m?.at === p.at) continue;
        const delay = s.restoreTrainDelayMs ?? RESTORE_TRAIN_DELAY_MS;
        trainer.submit(kind, p.at, ratingsOf(kind, p.at), settings, delay);
        yield;
      }
    }

    /**
     * A training point is due when event-time progress (before the next record, or after an
     * input without records) enters a new RETRAIN_INTERVAL, or jumps at least the idle timeout
     * past the newest event (an idle marker), with events fed since the last point. Judged per
     * record in EVENTS order, so the points are the same whatever the hops' batching.
     */
    const advance = (to: number) => {
      const progress = Math.max(p.progress, to);
      const epoch = s.retrainMs > 0 && progress >= 0 ? Math.floor(progress / s.retrainMs) : -1;
      const idle =
        s.idleMs > 0 && p.maxTs >= 0 && progress > p.progress && progress >= p.maxTs + s.idleMs;
      // The first progress only sets the interval: a training on the first events is waste.
      const due = p.n > p.at && ((p.epoch >= 0 && epoch > p.epoch) || idle);
      p = { ...p, progress, epoch: Math.max(p.epoch, epoch) };
      if (due) {
        p = { ...p, at: p.n };
        submit();
      }
    };

    const operator = (batches$: Observable<InputBatch<ParsedRecord>>) =>
      batches$.pipe(
        map((b) => {
          for (const r of b.records) {
            advance(r.wb);
            collab.add(sourceEventOf(r, s.preset), p.n + 1);
            p = { ...p, n: p.n + 1, maxTs: Math.max(p.maxTs, r.ts), s: r.s };
            advance(r.ts);
          }
          if (b.records.length === 0) advance(b.progress.to);
          points.set("t", p);
          return {};
        }),
        finalize(() => trainer.stop()),
      );

    const view: CollaborativeView = {
      collaborative: () => collab,
      status: () => {
        const models: Partial<Record<ModelKind, number>> = {};
        for (const kind of KINDS) {
          const m = collab.model(kind);
          if (m) models[kind] = m.at;
        }
        return { events: p.n, trainAt: p.at, models, seq: p.s ?? -1 };
      },
      training: () => trainer.busy(),
      versions: () => versions.list(),
    };
    return { operator, view, restore: restore() };
  },
});
