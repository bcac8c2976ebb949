/** Subjects of the pipeline (DESIGN.md §3): reco.<stage>.<partition>. */
export const subjects = {
  /** parse -> watermark, keyed by user. */
  parse: (p: number) => `reco.parse.${p}`,
  /** Every partition's parse hops: the recommender stage's one consumer. */
  parseAll: "reco.parse.*",
  /** parse -> popularity and trending, keyed by item. */
  items: (q: number) => `reco.items.${q}`,
  /**
   * history -> covisit, from user partition p to item partition q: the pairs of p's events whose
   * items q holds (actors/contract/event.ts PairRecord).
   */
  pairs: (q: number, p: number) => `reco.pairs.${q}.${p}`,
  /** Every user partition's pairs for item partition q: covisit/<q>'s one consumer. */
  pairsTo: (q: number) => `reco.pairs.${q}.*`,
  /** The hops stream's subjects of the pairs. */
  pairsAll: "reco.pairs.*.*",
  /**
   * collaborative/<p> -> collaborative-trainer/0: the changes of partition p's rows at each of
   * its crossings of the training points, then the crossing (actors/stages/collaborative-stage.ts).
   */
  collab: (p: number) => `reco.collab.${p}`,
  /** Every partition's: the trainer's one consumer, and the hops stream's subjects of them. */
  collabAll: "reco.collab.*",
  watermark: (p: number) => `reco.watermark.${p}`,
  window: (p: number) => `reco.window.${p}`,
  interestRanking: (p: number) => `reco.interest-ranking.${p}`,
  dlqParse: "reco.dlq.parse",
  /** Item upserts that could not be applied (catalogue-upsert's dead letters). */
  dlqItems: "reco.dlq.items",
  /** Item upserts: `PUT /v1/items/{id}` and any NATS publisher (stream ITEMS). */
  itemsUpsert: "items.upsert",
  dlqPoison: "reco.dlq.poison",
  late: "reco.late",
} as const;

/**
 * Whether readers outside the stage graph follow a hop subject, so that it is published even
 * between chained stages: serving replicas and gateways follow interest-ranking's profiles
 * (connectors/nats/profile-watch.ts, actors/serving/profile-replica.ts).
 */
export const readOutsideGraph = (subject: string): boolean =>
  subject.startsWith("reco.interest-ranking.");

/** KV buckets the stages write: processing-time tables read by the serving side. */
export const buckets = {
  /** Product popularity table (item -> purchases over 7 days), broadcast to every partition. */
  popularity: "reco_popularity",
  /** Per-partition trending top lists per window. */
  trending: "reco_trending",
  /** The item catalogue: each item's learned (`l.`) and explicit (`x.`) layers. */
  catalogue: "reco_catalogue",
} as const;

/** The catalogue bucket's key of one item's layer: `l` learned from events, `x` explicit. */
export const catalogueKey = (layer: "l" | "x", item: string): string => `${layer}.${kvKeyOf(item)}`;

/** KV keys allow [-/_=.a-zA-Z0-9]; item ids are arbitrary strings, so unsafe ones are base64url'd. */
export function kvKeyOf(id: string): string {
  return /^[-_a-zA-Z0-9]+$/.test(id) ? `i.${id}` : `b.${Buffer.from(id).toString("base64url")}`;
}

export function idOfKvKey(key: string): string {
  const rest = key.slice(2);
  return key.startsWith("b.") ? Buffer.from(rest, "base64url").toString() : rest;
}

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
