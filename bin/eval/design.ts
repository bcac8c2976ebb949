/** The design driver moved to actors/ (the prequential scorer drives it too); eval reads it here. */
export { createDesignDriver, DESIGN_DEFAULTS } from "../../actors/plan/index.js";
export type { DesignDriver, DesignSettings } from "../../actors/plan/index.js";
