import type { SourceEvent } from "./types.js";

/**
 * What a preset means to the candidate sources (DESIGN §3.7): how much each interaction says
 * about a user's taste, which events are the "target" (a purchase; a rating of 4 or more), and
 * what counts as done (not recommended again from the user's history).
 */
export interface SourcePreset {
  name: "ecommerce" | "movies";
  /** The strength of one interaction (0: ignored). */
  weight(e: SourceEvent): number;
  /** Whether the event is what recommendations aim at (a purchase, a rating of 4+). */
  isTarget(e: SourceEvent): boolean;
  /** Whether the event makes its item done for the user (left out of HISTORY). */
  isDone(e: SourceEvent): boolean;
  /** How long a done item stays done (ms of event time; Infinity: for good). */
  doneForMs: number;
  /** Verb of explanations: "viewed" together with, "watched" together with. */
  verb: string;
}

const ECOMMERCE_WEIGHTS: Record<string, number> = {
  view: 1,
  click: 2,
  cart: 3,
  purchase: 5,
  remove_from_cart: 0,
};

const DAY = 86_400_000;

/** E-commerce: view 1, click 2, cart 3, purchase 5; purchased in the last 24 h is done. */
export const ECOMMERCE: SourcePreset = {
  name: "ecommerce",
  weight: (e) => (e.t === "rating" ? Math.max(0, e.r) : (ECOMMERCE_WEIGHTS[e.t] ?? 0)),
  isTarget: (e) => e.t === "purchase" || e.t === "cart",
  isDone: (e) => e.t === "purchase",
  doneForMs: DAY,
  verb: "viewed",
};

/** Movies: ratings by value (a rating of 4+ is a purchase); a rated movie is done for good. */
export const MOVIES: SourcePreset = {
  name: "movies",
  weight: (e) => (e.t === "rating" ? Math.max(0, e.r) : (ECOMMERCE_WEIGHTS[e.t] ?? 0)),
  isTarget: (e) => (e.t === "rating" ? e.r >= 4 : e.t === "purchase"),
  isDone: (e) => e.t === "rating" || e.t === "purchase",
  doneForMs: Infinity,
  verb: "watched",
};

export function presetNamed(name: string): SourcePreset {
  if (name === "movies") return MOVIES;
  if (name === "ecommerce") return ECOMMERCE;
  throw new Error(`unknown preset ${JSON.stringify(name)} (ecommerce or movies)`);
}
