import { asyncScheduler } from "rxjs";
import type { StageStateInternal } from "../../state/index.js";
import {
  createStageLogic,
  type StateMap,
  type StateMaps,
  type ValueCodec,
} from "../../runtime/index.js";
import type { RecentEvent, SimilarItems, Preset } from "../contract/index.js";
import { createBlendAnswers, recentOf, type BlendAnswers } from "./blend-answers.js";
import type { ChangeChunk } from "./blend-changes.js";
import { covisitStage, type CovisitView, historyStage, type HistoryView } from "../stages/index.js";
import {
  createItemIds,
  type ItemIds,
  readStoredModel,
  type StoredModel,
  createCollaborative,
  type CollaborativeSource,
  defaultBlend,
  defaultSourceSettings,
  createHistory,
  presetNamed,
} from "../sources/index.js";
import { partitionOf } from "../contract/index.js";
import type { PopularityRow } from "../stages/index.js";
import { covisitSimilar } from "./recommender-serve.js";
import { composeView, type RecommenderView } from "./recommender-view.js";

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
  /** The stage instances it replicates ("history/0" … , "covisit/0", "collaborative/0"). */
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

/** A deleted key of a snapshot read (adoptBase), in a layer's values. */
const DELETED: unique symbol = Symbol("deleted");
/** The stored value a decoded value came from, for a value of the snapshot read itself. */
const FROM_BASE: unique symbol = Symbol("from-base");

/** One map of an instance: the stored values received, over the snapshot read, if any. */
interface Layer {
  /** Stored values as received; DELETED for a key of `base` deleted since. */
  readonly values: Map<string, unknown>;
  /** The map in the snapshot read (its keys; values are read through the view's options). */
  readonly base: StateMap<unknown> | undefined;
  /** Keys of `values` not in `base`, and keys of `base` deleted. */
  added: number;
  removed: number;
}

/** One run of a stage instance as received: its maps of stored values. */
interface Instance {
  /** Undefined for a snapshot read whose run has not said so yet (adoptBase). */
  run: string | undefined;
  readonly maps: Map<string, Layer>;
  /** The snapshot read from the state store that the run starts from (adoptBase). */
  readonly base?: StageStateInternal;
  /** The read's token. */
  readonly token?: string;
  /** Changes applied to it (a view built at another version is stale). */
  version: number;
  /**
   * The state maps views read it through, by map name, with their decoded values: kept for the
   * run, so a view built again (covisit's, after its data changed) decodes only what changed.
   */
  readonly views: Map<string, StateMap<unknown>>;
  /** Covisit's item numbering, kept with the decoded neighbour lists that use it. */
  ids?: ItemIds;
}

/** Decoded values kept per map (a history read decodes its user's JSON once per change). */
const DECODED_MAX = 20_000;
/**
 * Covisit's view is built again when its data changed, at most this often: building it is cheap,
 * but its trending and popular lists are then sorted again from every item's count at the first
 * read (the stage keeps them in order event by event, which a replica given counts cannot).
 */
const COVISIT_REBUILD_MS = 100;

const noop = () => undefined;
/** Users whose last change is remembered at most (a kept answer is at most MEMO_ANSWERS). */
const USERS_TRACKED = 200_000;
/** Maps keyed by user whose values only that user's answer reads (history, collaborative rows). */
const USER_MAPS: ReadonlySet<string> = new Set(["users", "rows", "xrows"]);
/** Maps that hold only a stage's clock (covisit's progress and records fed). */
const CLOCK_MAPS: ReadonlySet<string> = new Set(["clock"]);

const layerOf = (inst: Instance, name: string): Layer => {
  let l = inst.maps.get(name);
  if (!l) {
    l = { values: new Map(), base: inst.base?.map(name), added: 0, removed: 0 };
    inst.maps.set(name, l);
  }
  return l;
};
const sizeOfLayer = (l: Layer) => (l.base ? l.base.size + l.added - l.removed : l.values.size);

/**
 * A state map over a replica instance's stored values, decoded as the stage's options say: the
 * values received, else the snapshot read's (peeked: decoded without the snapshot's state keeping
 * them; kept here as received values are).
 */
function replicaMap<V>(
  layer: Layer,
  baseRead: StateMap<V> | undefined,
  options: { text?: boolean; codec?: ValueCodec<V> } | undefined,
  counts: { decoded: number },
): StateMap<V> {
  const { values, base } = layer;
  const decode: ((stored: unknown) => V) | undefined = options?.codec
    ? (v) => options.codec!.decode(v)
    : options?.text
      ? (v) => (typeof v === "string" ? (JSON.parse(v) as V) : (v as V))
      : undefined;
  const decoded = new Map<string, { stored: unknown; value: V }>();
  const peekBase = baseRead && (baseRead.peek ?? baseRead.get);
  /** A key of the snapshot read: decoded by its map, kept as a received value's decoding is. */
  const fromBase = (k: string): V | undefined => {
    if (!peekBase) return undefined;
    if (!decode) return peekBase(k);
    const hit = decoded.get(k);
    if (hit && hit.stored === FROM_BASE) return hit.value;
    const value = peekBase(k);
    if (value === undefined) return undefined;
    counts.decoded++;
    if (decoded.size >= DECODED_MAX) decoded.clear();
    decoded.set(k, { stored: FROM_BASE, value });
    return value;
  };
  const get = (k: string): V | undefined => {
    const stored = values.get(k);
    if (stored === undefined) return fromBase(k);
    if (stored === DELETED) return undefined;
    if (!decode) return stored as V | undefined;
    const hit = decoded.get(k);
    if (hit && hit.stored === stored) return hit.value;
    const value = decode(stored);
    counts.decoded++;
    if (decoded.size >= DECODED_MAX) decoded.clear();
    decoded.set(k, { stored, value });
    return value;
  };
  const refuse = () => {
    throw new Error("a blend replica is read-only");
  };
  const keys = base
    ? function* (): Generator<string> {
        for (const k of base.keys()) if (values.get(k) !== DELETED) yield k;
        for (const [k, v] of values) if (v !== DELETED && !base.has(k)) yield k;
      }
    : () => values.keys();
  return {
    get,
    has: (k) => {
      const v = values.get(k);
      return v === undefined ? (base?.has(k) ?? false) : v !== DELETED;
    },
    set: refuse,
    delete: refuse,
    get size() {
      return sizeOfLayer(layer);
    },
    keys,
    *entries() {
      for (const k of keys()) yield [k, get(k)!] as [string, V];
    },
    ...(options?.text
      ? {
          peekText: (k: string) => {
            const v = values.get(k);
            if (v === DELETED) return undefined;
            return v === undefined ? baseRead?.peekText?.(k) : (v as string);
          },
        }
      : {}),
  };
}

/**
 * The instance's state as a stage reads it. A map is made once per run and name (a stage's code
 * asks for each of its maps with the same options every time it is created).
 */
const mapsOf = (inst: Instance, counts: { decoded: number }): StateMaps => ({
  map: <V>(name: string, options?: { text?: boolean; codec?: ValueCodec<V> }) => {
    let view = inst.views.get(name);
    if (!view) {
      const layer = layerOf(inst, name);
      view = replicaMap<V>(
        layer,
        layer.base && inst.base!.map<V>(name, options),
        options,
        counts,
      ) as StateMap<unknown>;
      inst.views.set(name, view);
    }
    return view as StateMap<V>;
  },
  value: () => ({ get: noop, set: noop }),
});

export function createBlendReplica(cfg: {
  preset: Preset;
  partitions: number;
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

  let covisit: { inst: Instance; version: number; at: number; view: CovisitView } | undefined;
  const covisitView = (): CovisitView | undefined => {
    const inst = live.get("covisit/0");
    if (!inst) return undefined;
    const c = covisit;
    if (c && c.inst === inst && (c.version === inst.version || now() - c.at < COVISIT_REBUILD_MS))
      return c.view;
    // Built again over the same maps and item numbering: the neighbour lists decoded for an
    // earlier view and not changed since are read as they are (a view of its own decoded every
    // list an answer read again, several times a second under ingest).
    const ids = (inst.ids ??= createItemIds());
    const view = createStageLogic(
      covisitStage,
      ctxOf("covisit", inst, { preset, sources, ids }),
    ).view;
    covisit = { inst, version: inst.version, at: now(), view };
    return view;
  };

  type Served = { at: number; stored: unknown };
  let collab:
    | { inst: Instance; source: CollaborativeSource; models: Partial<Record<string, Served>> }
    | undefined;
  const kinds = (["implicit", "explicit"] as const).filter((k) => sources[k]);
  const collaborative = (): CollaborativeSource | undefined => {
    const inst = live.get("collaborative/0");
    if (!inst) return undefined;
    if (collab?.inst !== inst) {
      const m = mapsOf(inst, counts);
      collab = {
        inst,
        models: {},
        source: createCollaborative(preset, sources, {
          // As the collaborative stage declares them (its rows are text maps).
          implicit: { rows: m.map("rows", { text: true }), items: m.map("items") },
          explicit: { rows: m.map("xrows", { text: true }), items: m.map("xitems") },
        }),
      };
    }
    // The models as the stage stores them when a training ends (als-model.ts StoredModel):
    // served here once they arrive, decoded once per model.
    const stored = mapsOf(inst, counts).map<StoredModel>("model");
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
    instances: [...historyIds, "covisit/0", "collaborative/0"],
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
          chunk.instance.startsWith("history/") || chunk.instance === "collaborative/0";
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
    isReady: () => live.has("covisit/0") && historyIds.every((id) => live.has(id)),
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
