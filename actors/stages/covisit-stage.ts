import { map, tap } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import { partitionOf, type PairRecord } from "../contract/index.js";
import {
  createItemIds,
  itemEdgesCodec,
  type ItemIds,
  createCovisitItems,
  type CovisitItems,
  type CovisitOptions,
  type SourceEvent,
  createPopular,
  createTrending,
  type CounterPart,
} from "../sources/index.js";
import type { SourcePreset, SourceSettings } from "../sources/index.js";

/**
 * The item-keyed candidate sources as a stage (DESIGN §3.7, RANKER=blend), one instance per item
 * partition: co-visitation's neighbour lists and totals (covisit.ts createCovisitItems), the
 * trending and popular counters, the items' categories and prices, each for the items of its
 * partition. Fed the pair records every user partition's history stage sends it
 * (`reco.pairs.<q>.*`, PairRecord), merged into EVENTS order (merged-input.ts pairsInput): a
 * pair's weight and an item's count are float sums over many users' events, so each item's are
 * summed in the events' own order, and a replay gives the same bits whatever the batching and
 * whichever worker runs which partition.
 *
 * State: one key per item of the partition (neighbours bounded by 3K, a decayed total, two
 * counters, a category, a price). Its progress (event time of the records fed and of the user
 * partitions' progress records) is, over every partition, the clock of blended answers.
 */
export interface CovisitStageSettings {
  preset: SourcePreset;
  sources: Pick<SourceSettings, "covisit" | "trending" | "popularHalfLifeMs">;
  /** This item partition, of `partitions` (the items it holds: partitionOf(item) === partition). */
  partition: number;
  partitions: number;
  /**
   * The numbering of item ids its neighbour lists decode with; a new one by default. The
   * partitions read together share one (covisit-read.ts); the blend's replica (blend-replica.ts)
   * creates the views again over the same maps as they change and keeps one numbering, so lists
   * it decoded before stay valid for the new view.
   */
  ids?: ItemIds;
}

export interface CovisitView {
  /** Co-visitation of this partition's items. */
  covisit(): CovisitItems;
  trending(): CounterPart;
  popular(): CounterPart;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Events of this partition's items fed. */
  fed(): number;
  /** EVENTS sequence of the newest record fed (-1: none yet). */
  seq(): number;
}

/** Maps of the layout before (one instance fed every parse hop): dropped at the first start. */
const OLD_MAPS = [
  ...["recent", "edges", "mass", "trending", "popular", "anchors", "categories", "prices"],
  ...["clock", "preq", "preqCover", "preqItems", "preqCatalogue", "preq-clock"],
];

export const covisitStage = defineStage({
  name: "covisit",
  input: port<PairRecord>(),
  ports: {},
  create: (ctx: StageContext<CovisitStageSettings>) => {
    const { preset, sources: s, partition: q, partitions: Q } = ctx.settings;
    const st = ctx.state;
    for (const name of OLD_MAPS) {
      const old = st.map(name);
      for (const k of [...old.keys()]) old.delete(k);
    }
    const ids = ctx.settings.ids ?? createItemIds();
    const options: CovisitOptions = { preset, ...s.covisit };
    const covisit = createCovisitItems(options, {
      edges: st.map("item-edges", { codec: itemEdgesCodec(ids) }),
      ids,
      mass: st.map("item-mass"),
    });
    const anchors = st.map<number>("counter-anchors");
    const trending = createTrending({
      halfLifeMs: s.trending.halfLifeMs,
      all: s.trending.all,
      store: { raw: st.map("item-trending"), anchors, anchorKey: "trending" },
    });
    const popular = createPopular(preset.isTarget, s.popularHalfLifeMs, {
      raw: st.map("item-popular"),
      anchors,
      anchorKey: "popular",
    });
    const clock = st.map<{ progress: number; n: number; s: number }>("item-clock");
    const t = clock.get("t");
    let { progress, n, s: seq } = t ?? { progress: -1, n: 0, s: -1 };
    const categories = st.map<string>("item-categories");
    // Per item: [sum of prices, events that carried one], from events of any type.
    const prices = st.map<[number, number]>("item-prices");
    /** Whether this partition holds the item (the links back to an event's item). */
    const mine = (item: string) => partitionOf(item, Q) === q;
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
    /** The per-record loop, in EVENTS order. */
    const feed = ({ records }: InputBatch<PairRecord>) => {
      for (const r of records) {
        if (r.p !== undefined) {
          progress = Math.max(progress, r.p);
          continue;
        }
        const ev = r.e;
        if (ev === undefined) covisit.back(r.i, r.ts, r.n, r.w);
        else {
          const e: SourceEvent = { u: "", i: r.i, t: ev.t, ts: r.ts, c: ev.c, r: ev.r };
          const w = preset.weight(e);
          if (w > 0) covisit.own(r.i, r.ts, w, r.n, r.w, mine);
          trending.add(e);
          popular.add(e);
          if (e.c !== "" && categories.get(e.i) !== e.c) categories.set(e.i, e.c);
          if (ev.pr >= 0) {
            const [sum, k] = prices.get(r.i) ?? [0, 0];
            prices.set(r.i, [sum + ev.pr, k + 1]);
          }
          progress = Math.max(progress, ev.wb);
          n++;
        }
        progress = Math.max(progress, r.ts);
        seq = r.s;
      }
    };
    const tick = () => {
      covisit.flush();
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
