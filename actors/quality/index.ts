/**
 * The online quality measures (DESIGN §7): prequential hit rates, A/B arms, drift's PSI, the
 * collaborative model's versions.
 *
 * What the rest of the program uses from actors/quality/; its files import each other directly.
 */
export { createArms, parseArms } from "./arms.js";
export { DRIFT_DEFAULTS, DRIFT_DIMENSIONS, driftReport, emptyBucket, psiOf } from "./drift-psi.js";
export { createModelVersions } from "./model-versions.js";
export {
  COVER_CHUNKS,
  WINDOW_NAMES,
  coverCodec,
  createPrequential,
  differenceInterval,
  mergeReports,
  wilson,
} from "./prequential.js";

export type { Arm, Arms } from "./arms.js";
export type { BucketCounts, DriftDimension, DriftReport, DriftSettings } from "./drift-psi.js";
export type { ModelVersion } from "./model-versions.js";
export type {
  MethodFigures,
  PrequentialParts,
  PrequentialReport,
  WindowName,
} from "./prequential.js";
