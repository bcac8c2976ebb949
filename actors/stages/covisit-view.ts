import type { ItemCounter, SimilarItemsReads, SimilarItemsSource } from "../sources/index.js";
import type { PrequentialView } from "./prequential-scorer.js";

/** What the covisit stage offers its readers (one partition's, or every partition's together). */
export interface CovisitView {
  covisit(): SimilarItemsSource | SimilarItemsReads;
  trending(): ItemCounter;
  popular(): ItemCounter;
  categoryOf(item: string): string | undefined;
  /** The average price over every event of the item that carried one; undefined: none did. */
  priceOf(item: string): number | undefined;
  /** [sum of prices, events that carried one] of the item here (what priceOf averages). */
  pricesOf(item: string): readonly [number, number] | undefined;
  /** Event-time progress of what was fed (-1 before any). */
  progress(): number;
  /** Records fed. */
  fed(): number;
  /** The prequential scorer's figures, when it runs here. */
  prequential(): PrequentialView | undefined;
}
