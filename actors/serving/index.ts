/**
 * What answers reads: the blend's answers, its replica in the serving process and the changes fed
 * to it, the recommender's view, serve and memo, and the catalogue, trending and profile tables.
 *
 * What the rest of the program uses from actors/serving/; its files import each other directly.
 */
export { createBlendAnswers, recentOf } from "./blend-answers.js";
export { UNREPLICATED_MAPS, createChangeFeed } from "./blend-changes.js";
export { createBlendReplica } from "./blend-replica.js";
export { withCatalogue } from "./catalogue-backend.js";
export { createCatalogueTable } from "./catalogue-table.js";
export { createProfileReplica } from "./profile-replica.js";
export { createAnswerMemo } from "./recommender-memo.js";
export { blendAnswer, covisitSimilar, filterDesign, priceOf } from "./recommender-serve.js";
export { composeView, designBefore, designTaken, scorerServe } from "./recommender-view.js";
export { itemWideView, itemWideViews, routedCovisitPart } from "./item-wide-view.js";
export { itemInfo, similarByCategory } from "./similar-by-category.js";
export { createTrendingHub } from "./trending-hub.js";

export type { BlendAnswers } from "./blend-answers.js";
export type { ChangeChunk, ChangeFeed } from "./blend-changes.js";
export type { BlendReplica } from "./blend-replica.js";
export type { CatalogueTable } from "./catalogue-table.js";
export type { ProfileReplica } from "./profile-replica.js";
export type { RecommenderView } from "./recommender-view.js";
export type { ItemWideView } from "./item-wide-view.js";
export type { TrendingHub, TrendingHubOptions } from "./trending-hub.js";
