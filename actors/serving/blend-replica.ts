import { asyncScheduler } from "rxjs";
import type { StageStateInternal } from "../../state/index.js";
import { createStageLogic } from "../../runtime/index.js";
import type { RecentEvent, SimilarItems, Preset } from "../contract/index.js";
import { createBlendAnswers, recentOf, type BlendAnswers } from "./blend-answers.js";
import type { ChangeChunk } from "./blend-changes.js";
import {
  collaborativeRowsOf,
  COLLABORATIVE_TRAINER,
  TRAINER_MAPS,
  covisitStage,
  type CovisitView,
  historyStage,
  type HistoryView,
  routedRows,
} from "../stages/index.js";
import {
  createItemIds,
  readStoredModel,
  type StoredModel,
  createCollaborativeServing,
  type CollaborativeRows,
  type CollaborativeServing,
  defaultBlend,
  defaultSourceSettings,
  createHistory,
  presetNamed,
} from "../sources/index.js";
import { partitionOf } from "../contract/index.js";
import type { PopularityRow } from "../stages/index.js";
import { covisitSimilar } from "./recommender-serve.js";
import { composeView, type RecommenderView } from "./recommender-view.js";
import { itemWideViews } from "./item-wide-view.js";
import {
  DELETED,
  COVISIT_REBUILD_MS,
  noop,
  USERS_TRACKED,
  USER_MAPS,
  CLOCK_MAPS,
  layerOf,
  mapsOf,
  type Instance,
} from "./replica-maps.js";

/**
 * A replica of the blend's source stages (history per partition, covisit, collaborative) in a
 * process that runs none of them: the serving process of a split `reco start`. It holds their
 * state maps as the change stream (actors/serving/blend-changes.ts) sends them, in their stored form,
 * and reads them with the stages' own code (each stage's view created over the replica's maps;
 * the collaborative source over its rows, with the models the ingest process trained), through
 * the same answer code as the stages' process (actors/serving/blend-answers.ts): the same state gives
 * the same answer. Applying a chunk is a map write per key; values are decoded when an answer
 * reads them. Nothing here trains or feeds events: the heavy work stays in the ingest process.
 *
 * A start need not wait for a dump: the serving process reads the sources' snapshots from the
 * state store itself before it spawns the ingest process (adoptBase: the store's own load, cold
 * records kept as bytes and decoded when read), serves them at once, and the ingest process's
 * first run of each instance, which loads the same snapshot, sends only what changes after it.
 */
export interface BlendReplica {
  /**
   * The stage instances it replicates ("history/0" … , "covisit/0" … , "collaborative/0" … ,
   * "collaborative-trainer/0").
   */
  readonly instances: readonly string[];
  apply(chunk: ChangeChunk): void;
  /**
   * The snapshot of `instance` as the serving process read it from the state store (`token`
   * names that read to the ingest process, whose first run of the instance starts from it and
   * sends a chunk with `base: token` instead of a dump). Served at once if nothing of the
   * instance is yet; else once that chunk comes.
   */
  adoptBase(instance: string, token: string, state: StageStateInternal): void;
  /**
   * The ingest process had nothing more to send at `at` (ms): the replica is caught up then, for
   * as long as that process feeds it (`feeder`). Said while no process feeds it (a note read after
   * its sender died), it says nothing.
   */
  noteCaughtUp(at: number): void;
  /** Every source's first dump has arrived (covisit and each history partition). */
  isReady(): boolean;
  /**
   * 0 while caught up; else the time since it last was, at least 1 (Infinity: never). Once the
   * process that said it was caught up is gone (none, or a new one that has not said so yet), the
   * replica is as of that moment: from the first answer after, not from a later look.
   */
  stalenessMs(now: number): number;
  /** The blend's answer over the replica (blend-answers.ts: the stages' own answer code). */
  answer: BlendAnswers["answer"];
  recent(userId: string, n: number): RecentEvent[] | undefined;
  similar(
    itemId: string,
    n: number,
    row: (item: string) => PopularityRow | undefined,
  ): SimilarItems | undefined;
  /** Keys held over every instance, chunks applied, blended answers from the memo and computed. */
  stats(): {
    keys: number;
    chunks: number;
    memoHits: number;
    memoMisses: number;
    memoAged: number;
    /** Stored values decoded for reads so far. */
    decoded: number;
  };
}

export function createBlendReplica(cfg: {
  preset: Preset;
  partitions: number;
  /** Item partitions of co-visitation (`covisit/<q>`); default: `partitions`. */
  covisitPartitions?: number;
  /** ANSWER_MAX_AGE_MS (blend-answers.ts): 0 or absent, exact answers only. */
  answerMaxAgeMs?: number;
  now?: () => number;
  /**
   * The process feeding the replica (the ingest process's pid), undefined while there is none.
   * Absent: one feeder, always there.
   */
  feeder?: () => number | undefined;
}): BlendReplica {
  const now = cfg.now ?? Date.now;
  const feeder = cfg.feeder ?? (() => 0);
  const preset = presetNamed(cfg.preset);
  const sources = defaultSourceSettings(preset);
  const bs = defaultBlend(preset);
  /** The served run of each instance, and a run being built aside (its dump not complete). */
  const live = new Map<string, Instance>();
  const aside = new Map<string, Instance>();
  /** Snapshots read (adoptBase) whose run has not said so yet. */
  const bases = new Map<string, Instance>();
  /** Changes applied over every instance: part of a kept answer's stamp. */
  let changes = 0;
  /**
   * Per user, the count of chunks applied when their own keys (history, collaborative row) last
   * changed: such a change keeps other users' answers (blend-answers.ts userVersion).
   */
  const userChanged = new Map<string, number>();
  let chunks = 0;
  /** Stored values decoded for a read (neighbour lists, histories, rows). */
  const counts = { decoded: 0 };
  let caughtUpAt = -1;
  let pending = true;
  /** The feeder that said the replica was caught up at `caughtUpAt`. */
  let caughtUpBy: number | undefined;

  const ctxOf = <S>(name: string, inst: Instance, settings: S) => ({
    name,
    state: mapsOf(inst, counts),
    settings,
    scheduler: asyncScheduler,
    count: noop,
  });

  /** History views by instance (a run's view reads its maps as they change). */
  const histories = new WeakMap<Instance, HistoryView>();
  const historyIds = Array.from({ length: cfg.partitions }, (_, p) => `history/${p}`);
  const historyOf = (user: string): HistoryView | undefined => {
    const inst = live.get(historyIds[partitionOf(user, cfg.partitions)]!);
    if (!inst) return undefined;
    let v = histories.get(inst);
    if (!v) {
      const settings = {
        preset,
        halfLifeMs: sources.historyHalfLifeMs,
        maxItemsPerUser: sources.maxItemsPerUser,
      };
      v = createStageLogic(historyStage, ctxOf("history", inst, settings)).view;
      histories.set(inst, v);
    }
    return v;
  };

  /** One item numbering for every item partition's view (they are read together). */
  const itemIds = createItemIds();
  const Q = cfg.covisitPartitions ?? cfg.partitions;
  const covisitIds = Array.from({ length: Q }, (_, q) => `covisit/${q}`);
  const P = cfg.partitions;
  const collaborativeIds = Array.from({ length: P }, (_, p) => `collaborative/${p}`);
  const covisitViews: (
    { inst: Instance; version: number; at: number; view: CovisitView } | undefined
  )[] = [];
  const covisitViewOf = (q: number): CovisitView | undefined => {
    const inst = live.get(covisitIds[q]!);
    if (!inst) return undefined;
    const c = covisitViews[q];
    if (c && c.inst === inst && (c.version === inst.version || now() - c.at < COVISIT_REBUILD_MS))
      return c.view;
    // Built again over the same maps and item numbering: the neighbour lists decoded for an
    // earlier view and not changed since are read as they are (a view of its own decoded every
    // list an answer read again, several times a second under ingest).
    const settings = { preset, sources, ids: itemIds, partition: q, partitions: Q };
    const view = createStageLogic(covisitStage, ctxOf("covisit", inst, settings)).view;
    covisitViews[q] = { inst, version: inst.version, at: now(), view };
    return view;
  };
  const covisitView = itemWideViews(
    covisitIds.map((_, q) => () => covisitViewOf(q)),
    { preset, ...sources.covisit },
  );

  type Served = { at: number; stored: unknown };
  let collab:
    | { inst: Instance; source: CollaborativeServing; models: Partial<Record<string, Served>> }
    | undefined;
  const kinds = (["implicit", "explicit"] as const).filter((k) => sources[k]);
  /** Each partition's collaborative rows, over the instance served. */
  const partRows: ({ inst: Instance; rows: CollaborativeRows } | undefined)[] = [];
  const rowsOfPart = (p: number): CollaborativeRows | undefined => {
    const inst = live.get(collaborativeIds[p]!);
    if (!inst) return undefined;
    let r = partRows[p];
    if (r?.inst !== inst)
      partRows[p] = r = { inst, rows: collaborativeRowsOf(mapsOf(inst, counts), preset) };
    return r.rows;
  };
  const collaborative = (): CollaborativeServing | undefined => {
    const inst = live.get(COLLABORATIVE_TRAINER);
    if (!inst) return undefined;
    if (collab?.inst !== inst)
      collab = {
        inst,
        models: {},
        source: createCollaborativeServing(sources, routedRows(rowsOfPart, P)),
      };
    // The models as the stage stores them when a training ends (als-model.ts StoredModel):
    // served here once they arrive, decoded once per model.
    const stored = mapsOf(inst, counts).map<StoredModel>(TRAINER_MAPS.model);
    for (const kind of kinds) {
      const s = stored.get(kind);
      const had = collab.models[kind];
      if (s === had?.stored) continue;
      if (s) {
        const m = readStoredModel(s);
        collab.source.setModel(kind, m.model, m.at);
        collab.models[kind] = { at: m.at, stored: s };
      } else {
        collab.source.setModel(kind, undefined, 0);
        delete collab.models[kind];
      }
    }
    return collab.source;
  };

  /** The composed view of the user's partition; undefined until history and covisit are here. */
  const composed = new WeakMap<HistoryView, { parts: unknown[]; view: RecommenderView }>();
  const viewOf = (user: string): RecommenderView | undefined => {
    const h = historyOf(user);
    const c = covisitView();
    if (!h || !c) return undefined;
    const cf = collaborative();
    const parts = [c, cf];
    const last = composed.get(h);
    if (last && parts.every((x, i) => x === last.parts[i])) return last.view;
    const view = composeView(
      {
        history: h,
        covisit: c,
        ...(cf ? { collaborative: { collaborative: () => cf } } : {}),
      },
      sources,
    );
    composed.set(h, { parts, view });
    return view;
  };

  const answers = createBlendAnswers({
    blend: bs,
    view: viewOf,
    collaborative,
    changes: () => changes,
    userVersion: (user) => userChanged.get(user) ?? 0,
    ...(cfg.answerMaxAgeMs
      ? {
          maxAgeMs: cfg.answerMaxAgeMs,
          staleness: () => Math.min(stalenessOf(now()), 2 ** 31),
          now,
        }
      : {}),
  });
  const noHistory = createHistory({ preset });
  const stalenessOf = (t: number) => {
    if (caughtUpAt < 0) return Infinity;
    if (!pending && caughtUpBy !== undefined && feeder() === caughtUpBy) return 0;
    return Math.max(1, t - caughtUpAt);
  };

  return {
    instances: [...historyIds, ...covisitIds, ...collaborativeIds, COLLABORATIVE_TRAINER],
    adoptBase(instance, token, state) {
      const inst: Instance = {
        run: undefined,
        token,
        base: state,
        maps: new Map(),
        version: 0,
        views: new Map(),
      };
      bases.set(instance, inst);
      // Nothing served yet (a start): the snapshot is what the stages start from, served now.
      if (!live.has(instance)) {
        live.set(instance, inst);
        changes++;
        if (caughtUpAt < 0) {
          caughtUpAt = now();
          pending = true;
        }
      }
    },
    apply(chunk) {
      chunks++;
      let inst: Instance | undefined;
      if (chunk.base !== undefined) {
        // The run starts from the snapshot read: it replaces what is served (and a dump of an
        // earlier run being built aside).
        const b = bases.get(chunk.instance);
        if (b?.token !== chunk.base) return;
        bases.delete(chunk.instance);
        aside.delete(chunk.instance);
        b.run = chunk.run;
        if (live.get(chunk.instance) !== b) {
          live.set(chunk.instance, b);
          changes++;
        }
        inst = b;
      } else if (chunk.reset) {
        inst = { run: chunk.run, maps: new Map(), version: 0, views: new Map() };
        aside.set(chunk.instance, inst);
      } else {
        const a = aside.get(chunk.instance);
        const l = live.get(chunk.instance);
        inst = a?.run === chunk.run ? a : l?.run === chunk.run ? l : undefined;
      }
      // Changes of a run whose dump never came (it was replaced): nothing to apply them to.
      if (!inst) return;
      for (const m of chunk.maps) {
        const layer = layerOf(inst, m.map);
        const { values, base } = layer;
        if (!base) {
          for (const [k, v] of m.puts) values.set(k, v);
          for (const k of m.dels) values.delete(k);
          continue;
        }
        for (const [k, v] of m.puts) {
          const was = values.get(k);
          if (was === DELETED) layer.removed--;
          else if (was === undefined && !base.has(k)) layer.added++;
          values.set(k, v);
        }
        for (const k of m.dels) {
          const was = values.get(k);
          if (base.has(k)) {
            if (was !== DELETED) {
              values.set(k, DELETED);
              layer.removed++;
            }
          } else if (was !== undefined) {
            values.delete(k);
            layer.added--;
          }
        }
      }
      inst.version++;
      if (chunk.complete && aside.get(chunk.instance) === inst) {
        aside.delete(chunk.instance);
        live.set(chunk.instance, inst);
      }
      // Event-time progress alone (covisit's clock after an idle marker) is no change of data:
      // kept answers stay, served while their clock is close enough (blend-answers.ts), as in
      // the stages' process, where only batches with records count.
      if (live.get(chunk.instance) === inst) {
        // A user's own keys change only their answers; anything else (covisit, the models, a
        // new run swapped in) every answer.
        const perUser =
          chunk.instance.startsWith("history/") || chunk.instance.startsWith("collaborative/");
        for (const m of chunk.maps) {
          if (CLOCK_MAPS.has(m.map)) continue;
          if (perUser && USER_MAPS.has(m.map)) {
            // Bounded: past it, forgotten, and every kept answer with it.
            if (userChanged.size > USERS_TRACKED) {
              userChanged.clear();
              changes++;
            }
            for (const [k] of m.puts) userChanged.set(k, chunks);
            for (const k of m.dels) userChanged.set(k, chunks);
          } else changes++;
        }
        if (chunk.complete) changes++;
      }
      pending = true;
    },
    noteCaughtUp(at) {
      const by = feeder();
      if (by === undefined) return;
      pending = false;
      caughtUpAt = at;
      caughtUpBy = by;
    },
    isReady: () => covisitIds.every((id) => live.has(id)) && historyIds.every((id) => live.has(id)),
    stalenessMs: stalenessOf,
    answer: answers.answer,
    recent(userId, n) {
      const h = historyOf(userId);
      if (!h) return undefined;
      const c = covisitView();
      return recentOf(h.history(), c && ((i) => c.categoryOf(i)), userId, n);
    },
    similar(itemId, n, row) {
      const c = covisitView();
      if (!c) return undefined;
      const v = composeView({ history: { history: () => noHistory }, covisit: c }, sources);
      return covisitSimilar(v, row, itemId, n);
    },
    stats() {
      let keys = 0;
      for (const inst of live.values()) {
        // A snapshot read: its keys once its records are placed (counting them earlier would
        // place them all at once), received keys added, deleted ones taken off.
        if (inst.base) keys += inst.base.keyCountSettled() ?? 0;
        for (const m of inst.maps.values()) keys += m.base ? m.added - m.removed : m.values.size;
      }
      return {
        keys,
        chunks,
        memoHits: answers.memo.hits,
        memoMisses: answers.memo.misses,
        memoAged: answers.memo.aged,
        decoded: counts.decoded,
      };
    },
  };
}
