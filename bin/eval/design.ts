/** The design driver lives in actors/plan (tests drive it too); eval reads it here. */
export { createDesignDriver, DESIGN_DEFAULTS } from "../../actors/plan/index.js";
export type { DesignDriver, DesignSettings } from "../../actors/plan/index.js";
