/** Subjects of the pipeline (DESIGN.md §3): reco.<stage>.<partition>. */
export const subjects = {
  /** parse -> watermark, keyed by user. */
  parse: (p: number) => `reco.parse.${p}`,
  /** Every partition's parse hops: the recommender stage's one consumer. */
  parseAll: "reco.parse.*",
  /** parse -> popularity and trending, keyed by item. */
  items: (q: number) => `reco.items.${q}`,
  watermark: (p: number) => `reco.watermark.${p}`,
  window: (p: number) => `reco.window.${p}`,
  interestRanking: (p: number) => `reco.interest-ranking.${p}`,
  dlqParse: "reco.dlq.parse",
  dlqPoison: "reco.dlq.poison",
  late: "reco.late",
} as const;

export const MINUTE = 60_000;
export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;
