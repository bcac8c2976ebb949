import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../runtime/index.js";
import type { ParsedRecord } from "./parse.js";
import { createItemIds, itemEdgesCodec } from "./sources/item-edges.js";
import { createCovisit, type SimilarItemsSource } from "./sources/covisit.js";
import { sourceEventOf } from "./sources/event.js";
import type { SourcePreset } from "./sources/preset.js";
import type { SourceSettings } from "./sources/recommender.js";
import { createPopular, createTrending, type ItemCounter } from "./sources/trending.js";

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
 */
export interface CovisitStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "covisit" | "trending" | "popularHalfLifeMs">;
}

export interface CovisitView {
  covisit(): SimilarItemsSource;
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Records fed. */
  fed(): number;
}

export const covisitStage = defineStage({
  name: "covisit",
  input: port<ParsedRecord>(),
  ports: {},
  create: (ctx: StageContext<CovisitStageSettings>) => {
    const { preset, sources: s } = ctx.settings;
    const st = ctx.state;
    const ids = createItemIds();
    const covisit = createCovisit(
      { preset, ...s.covisit },
      {
        edges: st.map("edges", { codec: itemEdgesCodec(ids) }),
        ids,
        mass: st.map("mass"),
        recent: st.map("recent", { text: true }),
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
    const categories = st.map<string>("categories");
    const clock = st.map<{ progress: number; n: number }>("clock");
    let { progress, n } = clock.get("t") ?? { progress: -1, n: 0 };
    const view: CovisitView = {
      covisit: () => covisit,
      trending: () => trending,
      popular: () => popular,
      categoryOf: (i) => categories.get(i),
      progress: () => progress,
      fed: () => n,
    };
    /** The per-record loop: every source's counts, in EVENTS order. */
    const feed = ({ records }: InputBatch<ParsedRecord>) => {
      for (const r of records) {
        const e = sourceEventOf(r);
        covisit.add(e);
        trending.add(e);
        popular.add(e);
        if (e.c !== "" && categories.get(e.i) !== e.c) categories.set(e.i, e.c);
        progress = Math.max(progress, r.wb, r.ts);
      }
    };
    /** The clock of blended answers: records fed and their event time, kept with the state. */
    const tick = ({ records, progress: p }: InputBatch<ParsedRecord>) => {
      covisit.flush();
      n += records.length;
      // Progress without records (idle markers): see merged-input.ts.
      if (records.length === 0) progress = Math.max(progress, p.to);
      clock.set("t", { progress, n });
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
