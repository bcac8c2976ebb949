import { map } from "rxjs";
import { defineStage, port, type InputBatch, type StageContext } from "../../runtime/index.js";
import type { InputMessage } from "../host/index.js";
import type { ParsedRecord } from "../contract/index.js";
import {
  InvalidArgumentError,
  learn,
  mergeExplicit,
  validateItemUpsert,
  type ExplicitFields,
  type ItemUpsert,
  type LearnedFields,
} from "../contract/index.js";
import type { AdaptedHandler } from "../host/index.js";

/**
 * The item catalogue as two stages, one per input, each exact under replay on its own input's
 * order and each writing its own layer (actors/contract/catalogue.ts), so their interleaving never changes
 * an item's view:
 * - `catalogue/<q>` per item partition, fed `reco.items.<q>`: what events say of their items;
 * - `catalogue-upsert/0`, the one reader of the `ITEMS` stream (`items.upsert`): what a
 *   merchandiser said, in the stream's order; a bad message goes to the dead letters.
 * Both put each changed item into the `reco_catalogue` KV bucket, which every serving process
 * watches (connectors/nats/catalogue-watch.ts).
 */

/** One item's learned layer as it leaves the stage. */
export interface LearnedRow extends LearnedFields {
  item: string;
}

/** One item's explicit layer as it leaves the stage. */
export interface ExplicitRow extends ExplicitFields {
  item: string;
}

/** An upsert message that could not be applied, and why (`bad_json`, `invalid_field:price`). */
export interface BadUpsert {
  msg: InputMessage;
  reason: string;
}

export interface CatalogueView {
  learned(item: string): LearnedFields | undefined;
}

export interface CatalogueUpsertView {
  explicit(item: string): ExplicitFields | undefined;
}

export const catalogueStage = defineStage({
  name: "catalogue",
  input: port<ParsedRecord>(),
  ports: { learned: port<LearnedRow>() },
  create(ctx: StageContext<Record<string, never>>) {
    const items = ctx.state.map<LearnedFields>("item");
    /** Each item's layer after the batch, once per changed item (in first-change order). */
    const learnBatch = ({ records, position }: InputBatch<ParsedRecord>): LearnedRow[] => {
      const changed = new Map<string, LearnedFields>();
      for (const r of records) {
        if (r.s <= position.from) continue; // seen before a restart
        const prev = changed.get(r.i) ?? items.get(r.i);
        const next = learn(prev, r);
        if (next === prev || next === undefined) continue;
        changed.set(r.i, next);
      }
      const rows: LearnedRow[] = [];
      for (const [item, fields] of changed) {
        items.set(item, fields);
        rows.push({ item, ...fields });
      }
      return rows;
    };
    return {
      view: { learned: (i) => items.get(i) } satisfies CatalogueView,
      operator: (batches$) => batches$.pipe(map((b) => ({ learned: learnBatch(b) }))),
    };
  },
});

const dec = new TextDecoder("utf-8", { fatal: true });

/** The upsert a message carries, or the dead letter's reason. */
export function readUpsert(msg: InputMessage): ItemUpsert | { reason: string } {
  let body: unknown;
  try {
    body = JSON.parse(dec.decode(msg.data));
  } catch {
    return { reason: "bad_json" };
  }
  try {
    return validateItemUpsert(body);
  } catch (err) {
    if (!(err instanceof InvalidArgumentError)) throw err;
    const o = body as Record<string, unknown> | null;
    const missing = typeof o === "object" && o !== null && !("item_id" in o);
    if (err.field === "body") return { reason: "not_an_object" };
    if (missing && err.field === "item_id") return { reason: "missing_field:item_id" };
    return {
      reason: /is not an item field/.test(err.message)
        ? `unknown_field:${err.field.slice(0, 64)}`
        : `invalid_field:${err.field}`,
    };
  }
}

export const catalogueUpsertStage = defineStage({
  name: "catalogue-upsert",
  input: port<InputMessage>(),
  ports: { explicit: port<ExplicitRow>(), dlq: port<BadUpsert>() },
  create(ctx: StageContext<Record<string, never>>) {
    const items = ctx.state.map<ExplicitFields>("item");
    const apply = ({ records }: InputBatch<InputMessage>) => {
      const explicit: ExplicitRow[] = [];
      const dlq: BadUpsert[] = [];
      for (const msg of records) {
        const u = readUpsert(msg);
        if ("reason" in u) {
          dlq.push({ msg, reason: u.reason });
          ctx.count("dead_letter");
          continue;
        }
        // The stored time, not now(): a replay of the stream gives the same `at`.
        const next = mergeExplicit(items.get(u.itemId), u, msg.time ?? 0, msg.seq);
        items.set(u.itemId, next);
        explicit.push({ item: u.itemId, ...next });
        ctx.count("upserts");
      }
      return { explicit, dlq };
    };
    return {
      view: { explicit: (i) => items.get(i) } satisfies CatalogueUpsertView,
      operator: (batches$) => batches$.pipe(map(apply)),
    };
  },
});

export type CatalogueHandler = AdaptedHandler<CatalogueView>;
export type CatalogueUpsertHandler = AdaptedHandler<CatalogueUpsertView>;
