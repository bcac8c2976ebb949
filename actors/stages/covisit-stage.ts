import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  createItemIds,
  itemEdgesCodec,
  type ItemIds,
  createCovisit,
  type SimilarItemsSource,
  sourceEventOf,
  createPopular,
  createTrending,
  type ItemCounter,
  recentStore,
  userValueCodec,
} from "../sources/index.js";
import type { SourcePreset, SourceSettings } from "../sources/index.js";

/**
 * The item-keyed candidate sources as a stage (DESIGN §3.7, RANKER=blend): co-visitation (the
 * top K neighbours per item, each user's recent items), the trending and popular counters and
 * the items' categories. One instance, fed every partition's user-path records in EVENTS order
 * (merged-input.ts): a pair's weight and an item's count are float sums over many users' events,
 * so their order must be the events' own for a replay to give the same bits.
 *
 * State: the sources' own data, one key per item (neighbours bounded by 3K, a decayed total, two
 * counters, a category) and per user (the last `recentPerUser` items), loaded as it was at start.
 * Its progress (event time of the records fed, and of idle progress) is the clock of blended
 * answers.
 *
 * Each user's recent items are stored as bytes (user-value-bytes.ts); a value written when the
 * prequential scorer ran here (`{ r, h }`, with its copy of the user's history) reads as its
 * recent items, and the user's next write drops the history part (user-stores.ts recentStore).
 */
export interface CovisitStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "covisit" | "trending" | "popularHalfLifeMs">;
  /**
   * The numbering of item ids its neighbour lists decode with; a new one by default. The blend's
   * replica (blend-replica.ts) creates this stage's view again over the same maps as they change
   * and keeps one numbering, so lists it decoded before stay valid for the new view.
   */
  ids?: ItemIds;
}

export interface CovisitView {
  covisit(): SimilarItemsSource;
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Records fed. */
  fed(): number;
  /** EVENTS sequence of the newest record fed (-1: none yet, or not known since the state's start). */
  seq(): number;
}

export const covisitStage = defineStage({
  name: "covisit",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<CovisitStageSettings>) => {
    const { preset, sources: s } = ctx.settings;
    const st = ctx.state;
    const ids = ctx.settings.ids ?? createItemIds();
    // Per user: recent items, as bytes (user-value-bytes.ts; JSON text before, which still loads).
    const recent = recentStore(st.map("recent", { codec: userValueCodec }));
    const covisit = createCovisit(
      { preset, ...s.covisit },
      {
        edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
        ids,
        mass: st.map("mass"),
        recent,
      },
    );
    const anchors = st.map<number>("anchors");
    const trending = createTrending({
      halfLifeMs: s.trending.halfLifeMs,
      all: s.trending.all,
      store: { raw: st.map("trending"), anchors, anchorKey: "trending" },
    });
    const popular = createPopular(preset.isTarget, s.popularHalfLifeMs, {
      raw: st.map("popular"),
      anchors,
      anchorKey: "popular",
    });
    // The prequential scorer's tallies, from when it ran here (it runs in the history stages
    // now): dropped once, at the first snapshot after this start.
    for (const name of ["preq", "preqCover", "preqItems", "preqCatalogue", "preq-clock"]) {
      const old = st.map(name);
      for (const k of [...old.keys()]) old.delete(k);
    }
    const clock = st.map<{ progress: number; n: number; s?: number }>("clock");
    const t = clock.get("t");
    let { progress, n } = t ?? { progress: -1, n: 0 };
    /** EVENTS sequence of the newest record fed (-1: none, or state from before it was kept). */
    let seq = t?.s ?? -1;
    const categories = st.map<string>("categories");
    // Per item: [sum of prices, events that carried one], from events of any type.
    const prices = st.map<[number, number]>("prices");
    const view: CovisitView = {
      covisit: () => covisit,
      trending: () => trending,
      popular: () => popular,
      categoryOf: (i) => categories.get(i),
      priceOf: (i) => {
        const p = prices.get(i);
        return p && p[1] > 0 ? p[0] / p[1] : undefined;
      },
      progress: () => progress,
      fed: () => n,
      seq: () => seq,
    };
    /** The per-record loop: every source's counts, in EVENTS order. */
    const feed = ({ records }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        const e = sourceEventOf(r, preset);
        covisit.add(e);
        trending.add(e);
        popular.add(e);
        if (e.c !== "" && categories.get(e.i) !== e.c) categories.set(e.i, e.c);
        if (r.pr >= 0) {
          const [sum, k] = prices.get(r.i) ?? [0, 0];
          prices.set(r.i, [sum + r.pr, k + 1]);
        }
        progress = Math.max(progress, r.wb, r.ts);
        seq = r.s;
      }
    };
    /** The clock of blended answers: records fed and their event time, kept with the state. */
    const tick = (batch: InputBatch<ParsedRecord>) => {
      const { records, progress: p } = batch;
      covisit.flush();
      n += records.length;
      // Progress without records (idle markers): see merged-input.ts.
      if (records.length === 0) progress = Math.max(progress, p.to);
      clock.set("t", { progress, n, s: seq });
    };
    return {
      operator: (batches$) =>
        batches$.pipe(
          tap(feed),
          tap(tick),
          map(() => ({})),
        ),
      view,
    };
  },
});
