import type { Observable } from "rxjs";
import type { CatalogueItem } from "./catalogue.js";
import { InvalidArgumentError, validateId } from "./invalid-argument.js";

// The argument errors sit below both the read contract and the catalogue (which validates ids).
export { InvalidArgumentError, MAX_ID_LENGTH, validateId } from "./invalid-argument.js";

/**
 * The serving port, transport-neutral: the gRPC façade and the JSON/HTTP API answer from the
 * same backend, with the same validation (below) and the same error conditions, so a client sees
 * the same answer whichever door it uses. The pipeline implements it over the stage actors (in
 * process), the gateway over replicas; the connectors know nothing else.
 */
export interface RecoBackend {
  /** False while NATS or state is not ready: the façades answer UNAVAILABLE / 503. */
  isReady(): boolean;
  /** Recommendations for one user; `n` is already validated (1..100). */
  getRecommendations(
    userId: string,
    n: number,
    signal: AbortSignal,
    options?: RecommendOptions,
  ): Promise<Recommendations>;
  /**
   * Optional fast path: the same answer as `getRecommendations`, given synchronously when the
   * serving state can be read in place (a worker's own partitions, a gateway's replica). The façade
   * then answers within the request's own task: no AbortSignal, timer, promise or closure per
   * call, and grpc-js writes the response while it is still handling the request's frames.
   * Throws what `getRecommendations` would reject with; `undefined` means "ask
   * `getRecommendations`" (an answer that needs I/O).
   */
  recommendNow?(userId: string, n: number, options?: RecommendOptions): Recommendations | undefined;
  /**
   * Trending snapshots for the newest window of `window`. Emits the latest known snapshot
   * at once (if any), then every update. Hot: it never completes while the process runs.
   */
  trending(window: TrendingWindowName): Observable<TrendingSnapshot>;
  /**
   * Items like `itemId` ("bought together / viewed together"); `n` validated (1..100). Optional:
   * a backend without it answers UNIMPLEMENTED / 501. `basis` says which source answered, so an
   * answer from a stand-in (same-category popularity) is never mistaken for co-visitation.
   */
  similarItems?(itemId: string, n: number): SimilarItems | Promise<SimilarItems>;
  /** What the serving state knows about one item (popularity over the horizon), if anything. */
  item?(itemId: string): ItemInfo | undefined;
  /**
   * The user's recent interactions, newest first, at most `n`. Optional: the history source
   * (DESIGN §3.7) provides it; without it the façade answers UNIMPLEMENTED / 501.
   */
  recentEvents?(userId: string, n: number): RecentEvent[] | Promise<RecentEvent[]>;
}

export interface RecentEvent {
  itemId: string;
  eventType: string;
  /** Epoch ms of the (latest) interaction. */
  eventTime: number;
  category: string;
  /** Interactions of this type with this item that the entry stands for. */
  count: number;
}

/** PERSONALIZED / POPULAR_FALLBACK: the design ranking; the others: the blend (DESIGN §5). */
export type Source =
  "PERSONALIZED" | "POPULAR_FALLBACK" | "HISTORY" | "SIMILAR_ITEMS" | "COLLABORATIVE" | "TRENDING";

/** Request options of GetRecommendations (validated by `validateRecommendOptions`). */
export interface RecommendOptions {
  /** Only items of this main category. */
  category?: string;
  /** Items never to return. */
  exclude?: ReadonlySet<string>;
  /** Leave out the items the user has interacted with. */
  excludeTouched?: boolean;
}
export type TrendingWindowName = "1h" | "24h";
export const TRENDING_WINDOWS: readonly TrendingWindowName[] = ["1h", "24h"];

export interface RecommendedItem {
  itemId: string;
  score: number;
  /** 1-based. */
  rank: number;
  category: string;
  brand: string;
  averagePrice: number;
  source: Source;
  purchases: number;
  /** One line a person can read ("in your top category electronics"); absent: the façade says it. */
  explanation?: string;
  /** From the item catalogue ("" or absent: unknown). */
  title?: string;
  labels?: string[];
}

export interface CategoryInterest {
  category: string;
  interest: number;
}

export interface Recommendations {
  userId: string;
  items: RecommendedItem[];
  topCategories: CategoryInterest[];
  /** Event-time watermark (epoch ms) the answer reflects; null before any data. */
  watermark: number | null;
  /** Why the list is empty or fallback-only; empty when personalised. */
  statusMessage: string;
  /** Upper bound on the answering view's staleness (ms); 0 or absent when current. */
  stalenessMs?: number;
  /** The user's A/B arm (ARMS), when arms are set. */
  arm?: string;
}

export interface TrendingEntry {
  itemId: string;
  score: number;
  views: number;
  clicks: number;
  /** Counted only when TRENDING_WEIGHTS lists the type; absent from older snapshots. */
  carts?: number;
  purchases?: number;
  /** From the item catalogue ("" or absent: unknown). */
  title?: string;
  labels?: string[];
}

export interface TrendingSnapshot {
  window: TrendingWindowName;
  /** Epoch ms. */
  windowStart: number;
  windowEnd: number;
  /** Sorted by score descending, ties by item id; at most 100 entries. */
  items: TrendingEntry[];
  final: boolean;
  watermark: number | null;
  /** The weight per event type each score counts (TRENDING_WEIGHTS in force). */
  weights?: Readonly<Record<string, number>>;
}

/**
 * Which source produced similar items. `CO_VISITATION` is DESIGN §3.7's item-to-item source;
 * `SAME_CATEGORY_POPULAR` is the stand-in served until it exists (the most purchased products of
 * the item's main category), `POPULAR_FALLBACK` when even the item's category is unknown.
 */
export type SimilarBasis = "CO_VISITATION" | "SAME_CATEGORY_POPULAR" | "POPULAR_FALLBACK";

export interface SimilarItem {
  itemId: string;
  score: number;
  /** 1-based. */
  rank: number;
  category: string;
  brand: string;
  averagePrice: number;
  purchases: number;
  explanation: string;
  /** From the item catalogue ("" or absent: unknown). */
  title?: string;
  labels?: string[];
}

export interface SimilarItems {
  itemId: string;
  basis: SimilarBasis;
  items: SimilarItem[];
  watermark: number | null;
  /** Why the list is empty or comes from a stand-in; empty otherwise. */
  statusMessage: string;
}

export interface ItemInfo {
  itemId: string;
  category: string;
  brand: string;
  averagePrice: number;
  /** Purchases over the popularity horizon (7 days of event time by default). */
  purchases: number;
  /** The catalogue's fields (actors/contract/catalogue.ts), when it knows the item. */
  catalogue?: CatalogueItem;
}

/** Thrown by a backend when it cannot answer yet (maps to UNAVAILABLE / 503). */
export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
}

/** At most this many excluded ids per request; a category at most this long. */
export const MAX_EXCLUDED = 100;
export const MAX_CATEGORY_LENGTH = 256;

/**
 * The request options, checked with the same rules through both doors: `category` not blank and
 * at most 256 characters (empty: any), each excluded id as an id (`exclude_item_ids` names the
 * field, as the proto does; the HTTP API names its own), at most 100 of them.
 */
export function validateRecommendOptions(
  o: { category: string; exclude: readonly string[]; excludeTouched: boolean },
  fields: { category: string; exclude: string } = {
    category: "category",
    exclude: "exclude_item_ids",
  },
): RecommendOptions {
  const out: RecommendOptions = {};
  if (o.category !== "") {
    if (o.category.trim().length === 0)
      throw new InvalidArgumentError(
        fields.category,
        `${fields.category} must not be blank (only white space)`,
      );
    if (o.category.length > MAX_CATEGORY_LENGTH)
      throw new InvalidArgumentError(
        fields.category,
        `${fields.category} must be at most ${MAX_CATEGORY_LENGTH} characters, got ${o.category.length}`,
      );
    out.category = o.category;
  }
  if (o.exclude.length > MAX_EXCLUDED)
    throw new InvalidArgumentError(
      fields.exclude,
      `${fields.exclude} must list at most ${MAX_EXCLUDED} ids, got ${o.exclude.length}`,
    );
  if (o.exclude.length > 0)
    out.exclude = new Set(o.exclude.map((id) => validateId(fields.exclude, id)));
  if (o.excludeTouched) out.excludeTouched = true;
  return out;
}

/** Whether any option is set (no options: the fast path answers as before). */
export const hasOptions = (o: RecommendOptions | undefined): o is RecommendOptions =>
  o !== undefined &&
  (o.category !== undefined || (o.exclude?.size ?? 0) > 0 || o.excludeTouched === true);

/** Default and bounds of `n` and `k` (DESIGN.md §5). */
export const DEFAULT_COUNT = 10;
export const MAX_COUNT = 100;

/** `n` or `k`: 0 (unset) means the default; otherwise 1..100. */
export function validateCount(field: string, value: number): number {
  if (value === 0) return DEFAULT_COUNT;
  if (!Number.isInteger(value) || value < 1 || value > MAX_COUNT) {
    throw new InvalidArgumentError(
      field,
      `${field} must be between 1 and ${MAX_COUNT}, got ${value}`,
    );
  }
  return value;
}
