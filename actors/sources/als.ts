/**
 * Alternating least squares for the collaborative source: what other modules use of it, by
 * responsibility — the settings (als-settings.ts), a model as training gives it and as it is
 * served (als-served.ts), the training (als-train.ts: half-steps, shared and computed user rows)
 * and its row solvers (als-solve.ts: Woodbury, conjugate gradient, Gram matrices;
 * als-cholesky.ts). The matrix it trains on is als-matrix.ts; serving a model, als-model.ts.
 */
export { EXPLICIT_SEED_001, IMPLICIT_DEFAULTS, type AlsSettings } from "./als-settings.js";
export { servedModel, type AlsModel, type ServedModel } from "./als-served.js";
export { trainAls, type TrainOptions } from "./als-train.js";
export { addObservation, gram } from "./als-solve.js";
export { choleskySolve } from "./als-cholesky.js";
