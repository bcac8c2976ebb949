import type { BaseFields } from "../../actors/contract/index.js";
import { loadMovieTitles } from "../replay/movies-titles.js";
import type { PipelineConfig } from "./config.js";

/**
 * The catalogue's base layer of this process: with the movies preset and MOVIES_CATALOG, the
 * films' titles and genres (read once per process, the same file every run, so it needs no
 * state); otherwise none.
 */
export function catalogueBase(
  cfg: Pick<PipelineConfig, "preset" | "moviesCatalog">,
): ReadonlyMap<string, BaseFields> {
  return cfg.preset === "movies" && cfg.moviesCatalog !== undefined
    ? loadMovieTitles(cfg.moviesCatalog)
    : new Map();
}
