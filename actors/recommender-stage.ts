import { finalize, map, type Observable } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../runtime/index.js";
import type { ParsedRecord } from "./parse.js";
import type { EventType } from "./event.js";
import { deserialiseModel, serialiseModel } from "./sources/als-model.js";
import type { AlsModel } from "./sources/als.js";
import { createRecommender, type Recommender, type SourceSettings } from "./sources/recommender.js";
import type { SourcePreset } from "./sources/preset.js";
import type { SourceEvent } from "./sources/types.js";
import {
  createTrainer,
  type ModelKind,
  type TrainFn,
  type Trainer,
} from "./recommender-trainer.js";

/**
 * The recommender stage (DESIGN §3.7): ONE instance reads every partition's user-path hops
 * (topology entry `recommender`: one consumer over all of them, so its input is one order, the
 * stream's) and feeds the candidate sources of actors/sources (`createRecommender`), which
 * serving blends at query time (recommender-serve.ts).
 *
 * State: the sources are not serialisable piecemeal, so the state is what they were fed: the
 * events in input order, in chunks (`log`), and the ALS models with the input point they were
 * trained at (`model`). A restart rebuilds the sources by feeding the logged events again, in
 * slices, then goes on with its input: the same sources as a run without the restart. The log
 * grows with the input (as the ALS matrix does: every interaction ever); a bounded log needs
 * the sources' own snapshots.
 *
 * Trainings happen at points of the input, so a replay trains on the same events: when
 * event-time progress enters a new RETRAIN_INTERVAL, and when progress moves on with no record
 * at least IDLE_TIMEOUT_MS past the newest event (an idle marker: the input went quiet). The
 * model of a point is trained in a worker (recommender-trainer.ts) and served once it is there:
 * serving never waits. A restart whose newest point had no model yet trains it again from the
 * log.
 */
export interface RecommenderSettings {
  preset: SourcePreset;
  sources: SourceSettings;
  /** Event time between trainings (ms). */
  retrainMs: number;
  /** A record-less progress jump of at least this much trains (the idle timeout; 0: never). */
  idleMs: number;
  /** Partitions of the user path (the subjects whose hops are merged into EVENTS order). */
  partitions: number;
  train: TrainFn;
  log?: (obj: object, msg: string) => void;
}

/** One input batch: one hop of one partition (records already deduplicated). */
export type RecommenderInput = ParsedRecord;

/** A logged event: [user, item, type, time, category, rating]. */
type Row = [string, string, EventType, number, string, number];

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
  progress: number;
}

const CHUNK = 1024;
const RESTORE_SLICE = 4096;
const chunkKey = (c: number) => String(c).padStart(10, "0");

export interface RecommenderView {
  /** The sources (read between batches only). */
  recommender(): Recommender;
  /** Event-time progress: the clock of answers. */
  progress(): number;
  /** The items the user interacted with. */
  touched(user: string): ReadonlySet<string> | undefined;
  /** An item's main category, from its events. */
  categoryOf(item: string): string | undefined;
  /** Events fed; the input point of the newest training and of the models served. */
  status(): { events: number; trainAt: number; models: Partial<Record<ModelKind, number>> };
  /** True while a training runs or waits. */
  training(): boolean;
}

export const recommenderStage = defineStage({
  name: "recommender",
  input: port<RecommenderInput>(),
  ports: {},
  create: (ctx: StageContext<RecommenderSettings>) => {
    const s = ctx.settings;
    const log = ctx.state.map<Row[]>("log");
    const points = ctx.state.map<Points>("points");
    const stored = ctx.state.map<{ at: number; b64: string }>("model");
    const rec = createRecommender(s.preset, s.sources);
    const touched = new Map<string, Set<string>>();
    const categories = new Map<string, string>();
    const served: Partial<Record<ModelKind, number>> = {};
    let p: Points = points.get("t") ?? { n: 0, at: 0, epoch: -1, maxTs: -1, progress: -1 };

    const setModel = (kind: ModelKind, at: number, m: AlsModel) => {
      if (kind === "implicit") rec.setImplicit(m);
      else rec.setExplicit(m);
      served[kind] = at;
    };
    const trainer: Trainer = createTrainer({
      train: s.train,
      onModel(kind, at, m) {
        // An older point's model never replaces a newer one's.
        if ((served[kind] ?? -1) > at) return;
        setModel(kind, at, m);
        stored.set(kind, { at, b64: Buffer.from(serialiseModel(m)).toString("base64") });
      },
      onError: (kind, err) => s.log?.({ kind, err: String(err) }, "ALS training failed"),
    });
    const submit = () => {
      if (s.sources.implicit)
        trainer.submit("implicit", p.at, rec.implicitRatings(), s.sources.implicit);
      if (s.sources.explicit)
        trainer.submit("explicit", p.at, rec.explicitRatings(), s.sources.explicit);
    };

    const feed = (r: Row) => {
      const e: SourceEvent = { u: r[0], i: r[1], t: r[2], ts: r[3], c: r[4], r: r[5] };
      rec.add(e);
      let t = touched.get(e.u);
      if (!t) touched.set(e.u, (t = new Set()));
      t.add(e.i);
      if (e.c !== "") categories.set(e.i, e.c);
    };

    // Restore: feed the logged events again; at the newest training point, take its model from
    // the snapshot or train it again from the ratings of that point.
    function* restore(): Iterator<void> {
      const keys = [...log.keys()].sort();
      let fed = 0;
      const atPoint = () => {
        if (p.at === 0 || fed !== p.at) return;
        for (const kind of ["implicit", "explicit"] as const) {
          const settings = s.sources[kind];
          if (!settings) continue;
          const m = stored.get(kind);
          if (m) setModel(kind, m.at, deserialiseModel(Buffer.from(m.b64, "base64")));
          if (m?.at !== p.at)
            trainer.submit(
              kind,
              p.at,
              kind === "implicit" ? rec.implicitRatings() : rec.explicitRatings(),
              settings,
            );
        }
      };
      let inSlice = 0;
      for (const k of keys) {
        for (const r of log.get(k) ?? []) {
          if (fed >= p.n) break; // a chunk written after the points (never, but bounded)
          feed(r);
          fed++;
          atPoint();
          if (++inSlice >= RESTORE_SLICE) {
            inSlice = 0;
            yield;
          }
        }
      }
    }

    /** Writes the batch's rows to the log chunks (fed already), one set per chunk touched. */
    const logRows = (rows: Row[], first: number) => {
      let x = 0;
      while (x < rows.length) {
        const at = first + x;
        const c = Math.floor(at / CHUNK);
        const part = rows.slice(x, x + CHUNK - (at % CHUNK));
        log.set(chunkKey(c), [...(log.get(chunkKey(c)) ?? []), ...part]);
        x += part.length;
      }
    };

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

    const operator = (batches$: Observable<InputBatch<RecommenderInput>>) =>
      batches$.pipe(
        map((b) => {
          const first = p.n;
          const rows: Row[] = [];
          for (const r of b.records) {
            advance(r.wb);
            const row: Row = [r.u, r.i, r.t, r.ts, r.c, r.r];
            rows.push(row);
            feed(row);
            p = { ...p, n: p.n + 1, maxTs: Math.max(p.maxTs, r.ts) };
            advance(r.ts);
          }
          if (rows.length > 0) logRows(rows, first);
          else advance(b.progress.to);
          points.set("t", p);
          return {};
        }),
        finalize(() => trainer.stop()),
      );

    const view: RecommenderView = {
      recommender: () => rec,
      progress: () => p.progress,
      touched: (u) => touched.get(u),
      categoryOf: (i) => categories.get(i),
      status: () => ({ events: p.n, trainAt: p.at, models: { ...served } }),
      training: () => trainer.busy(),
    };
    return { operator, view, restore: restore() };
  },
});
