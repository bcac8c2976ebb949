import { createStageState } from "../../state/store.js";
import { persisted } from "../../state/stage-state.js";
import type { StageStateInternal } from "../../state/index.js";
import { asyncScheduler, of, type OperatorFunction } from "rxjs";
import {
  createStageLogic,
  type InputBatch,
  type PortMap,
  type StageDefinition,
  type StageOutputs,
} from "../../runtime/index.js";
import {
  partitionOf,
  type PairRecord,
  type ParsedRecord,
  type EventType,
} from "../../actors/contract/index.js";
import {
  covisitStage,
  historyStage,
  type CovisitView,
  type HistoryView,
  type PairsTo,
} from "../../actors/stages/index.js";
import {
  createItemIds,
  type SourcePreset,
  type SourceSettings,
} from "../../actors/sources/index.js";
import { itemWideView } from "../../actors/serving/index.js";
import { batchMaker, stageContext } from "./stage.js";

/**
 * A state as a restarted instance loads it: every map's entries through JSON, as the snapshot
 * store writes and reads them (text maps stay text until read; a plain map's binary value as the
 * store's base64 text, persisted()).
 */
export function reloaded(state: StageStateInternal): StageStateInternal {
  const copy = createStageState();
  for (const [name, entries] of state.allMaps())
    for (const [k, v] of entries)
      copy.loadMapEntry(name, k, JSON.parse(JSON.stringify(persisted(v))) as unknown);
  copy.meta = JSON.parse(JSON.stringify(state.meta)) as Record<string, unknown>;
  return copy;
}

/** User-path records with EVENTS sequences 1, 2, ... and the progress before each. */
export function recordMaker() {
  let s = 0;
  let progress = -1;
  return (u: string, i: string, ts: number, t: EventType = "view", c = ""): ParsedRecord => {
    const r: ParsedRecord = {
      id: `e${++s}`,
      t,
      ts,
      u,
      i,
      c,
      b: "",
      pr: -1,
      r: -1,
      s,
      wb: progress,
    };
    progress = Math.max(progress, ts);
    return r;
  };
}

/**
 * The blend's item-keyed path as the engine runs it, in memory: a history stage per user
 * partition (co-visitation's user side) sending its pair records to a covisit stage per item
 * partition, each fed its records in EVENTS order, and the item-wide view over them. `feed`
 * hands one batch to every history stage (its partition's records) and then their pairs to the
 * covisit stages (one batch each, as many as `batches` says: a batch boundary of the hops).
 */
export function sourceStages(o: {
  partitions: number;
  preset: SourcePreset;
  sources: SourceSettings;
  /** Each instance's state (default: empty); what the stages are created with (e.g. tracked). */
  state?: (id: string) => StageStateInternal;
  track?: (id: string, state: StageStateInternal) => Parameters<typeof stageContext>[2];
}) {
  const P = o.partitions;
  const { preset, sources } = o;
  const options = { preset, ...sources.covisit };
  const make = <V>(
    id: string,
    def: StageDefinition<never, PortMap, never, V>,
    settings: object,
  ) => {
    const state = o.state?.(id) ?? createStageState();
    const { ctx } = stageContext(settings, asyncScheduler, o.track?.(id, state) ?? state);
    return { id, state, logic: createStageLogic(def, ctx as never) };
  };
  const ids = createItemIds();
  const history = Array.from({ length: P }, (_, p) =>
    make<HistoryView>(`history/${p}`, historyStage as never, {
      preset,
      halfLifeMs: sources.historyHalfLifeMs,
      maxItemsPerUser: sources.maxItemsPerUser,
      covisit: { options, partitions: P },
    }),
  );
  const covisit = Array.from({ length: P }, (_, q) =>
    make<CovisitView>(`covisit/${q}`, covisitStage as never, {
      preset,
      sources,
      partition: q,
      partitions: P,
      ids,
    }),
  );
  const hb = history.map(() => batchMaker<ParsedRecord>());
  const cb = covisit.map(() => batchMaker<PairRecord>());
  const run = <R>(logic: { operator: unknown }, b: InputBatch<R>) => {
    const outs: StageOutputs<PortMap>[] = [];
    of(b)
      .pipe(logic.operator as OperatorFunction<InputBatch<R>, StageOutputs<PortMap>>)
      .subscribe((x) => outs.push(x));
    return outs;
  };
  return {
    history,
    covisit,
    /** The item numbering the covisit stages share. */
    ids,
    /** Every item partition's view read together, as serving reads them. */
    view: () =>
      itemWideView(
        covisit.map((c) => c.logic.view),
        options,
      ),
    feed(records: readonly ParsedRecord[], opts: { batches?: number; wm?: number } = {}) {
      const batches = opts.batches ?? 1;
      const wm = opts.wm ?? Math.max(-1, ...records.map((r) => r.ts));
      const pairs: PairRecord[][] = covisit.map(() => []);
      for (let p = 0; p < P; p++) {
        const mine = records.filter((r) => partitionOf(r.u, P) === p);
        for (const out of run(history[p]!.logic, hb[p]!(wm, mine)))
          for (const { q, rec } of (out.pairs ?? []) as PairsTo[]) pairs[q]!.push(rec);
      }
      for (let q = 0; q < P; q++) {
        const recs = pairs[q]!.sort((a, b) => a.s - b.s);
        const size = Math.max(1, Math.ceil(recs.length / batches));
        for (let x = 0; x === 0 || x < recs.length; x += size)
          run(covisit[q]!.logic, cb[q]!(wm, recs.slice(x, x + size)));
      }
    },
  };
}
