/**
 * The composition: where each stage's ports go (topology.ts), each stage in the host with them
 * (handlers.ts), the recommender's and quality's wiring, and the design stages run in memory.
 *
 * What the rest of the program uses from actors/plan/; its files import each other directly.
 */
export { DESIGN_DEFAULTS, createDesignDriver } from "./design-driver.js";
export {
  createCatalogueHandler,
  createCatalogueUpsertHandler,
  createInterestHandler,
  createParseHandler,
  createPopularityHandler,
  createTrendingHandler,
  createWatermarkHandler,
  createWindowHandler,
  loadInterestHandler,
} from "./handlers.js";
export { qualityWiring } from "./quality-wiring.js";
export { recommenderWiring } from "./recommender-wiring.js";
export { POPULARITY_HEARTBEAT_KEY } from "./topology.js";

export type { DesignDriver, DesignSettings } from "./design-driver.js";
export type { RankerConfig, RankerWiring } from "./recommender-wiring.js";
