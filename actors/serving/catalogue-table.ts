import { BehaviorSubject, type Observable } from "rxjs";
import {
  resolveItem,
  type BaseFields,
  type CatalogueItem,
  type ExplicitFields,
  type LearnedFields,
} from "../contract/index.js";

/**
 * A serving process's copy of the catalogue: the layers the catalogue stages put into their KV
 * bucket (applied as the bucket's watch delivers them) and the movies file's titles, resolved per
 * item when asked. Serving reads it between watch deliveries; hidden items are kept as a set, so
 * filtering an answer costs nothing while none is hidden.
 */
export interface CatalogueTable {
  /** True once the watch has delivered the bucket's current content. */
  readonly initialised: boolean;
  /** Moves on every change applied: an answer described at one version stays right until then. */
  readonly version: number;
  /** Items hidden now. */
  readonly hidden: ReadonlySet<string>;
  /** Emits the hidden set whenever it changes (and the current one on subscribe). */
  readonly hidden$: Observable<ReadonlySet<string>>;
  /** The item's view; undefined when no layer knows it. */
  get(item: string): CatalogueItem | undefined;
  /** The item's explicit layer, if an upsert set any field. */
  explicit(item: string): ExplicitFields | undefined;
  /** Whether the explicit layer includes the upsert at stream sequence `seq`. */
  hasApplied(item: string, seq: number): boolean;
  /** Resolves once `hasApplied(item, seq)`, or false after `timeoutMs`. */
  whenApplied(item: string, seq: number, timeoutMs: number): Promise<boolean>;
  applyLearned(item: string, fields: LearnedFields | undefined): void;
  applyExplicit(item: string, fields: ExplicitFields | undefined): void;
  setInitialised(): void;
}

export function createCatalogueTable(
  base: ReadonlyMap<string, BaseFields> = new Map(),
): CatalogueTable {
  const learned = new Map<string, LearnedFields>();
  const explicit = new Map<string, ExplicitFields>();
  const hidden = new Set<string>();
  const hidden$ = new BehaviorSubject<ReadonlySet<string>>(new Set());
  const waiting = new Map<string, Set<() => void>>();
  let initialised = false;
  let version = 0;
  const table: CatalogueTable = {
    get initialised() {
      return initialised;
    },
    get version() {
      return version;
    },
    hidden,
    hidden$: hidden$.asObservable(),
    get(item) {
      const x = explicit.get(item);
      const b = base.get(item);
      const l = learned.get(item);
      if (!x && !b && !l) return undefined;
      return resolveItem(item, x, b, l);
    },
    explicit: (item) => explicit.get(item),
    hasApplied: (item, seq) => (explicit.get(item)?.seq ?? 0) >= seq,
    whenApplied(item, seq, timeoutMs) {
      if (table.hasApplied(item, seq)) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        let set = waiting.get(item);
        if (!set) waiting.set(item, (set = new Set()));
        const check = () => {
          if (!table.hasApplied(item, seq)) return;
          clearTimeout(timer);
          set.delete(check);
          resolve(true);
        };
        const timer = setTimeout(() => {
          set.delete(check);
          resolve(false);
        }, timeoutMs);
        set.add(check);
      });
    },
    applyLearned(item, fields) {
      version++;
      if (fields) learned.set(item, fields);
      else learned.delete(item);
    },
    applyExplicit(item, fields) {
      version++;
      if (fields) explicit.set(item, fields);
      else explicit.delete(item);
      const was = hidden.has(item);
      const is = fields?.hidden === true;
      if (was !== is) {
        if (is) hidden.add(item);
        else hidden.delete(item);
        hidden$.next(new Set(hidden));
      }
      for (const check of [...(waiting.get(item) ?? [])]) check();
    },
    setInitialised: () => void (initialised = true),
  };
  return table;
}
