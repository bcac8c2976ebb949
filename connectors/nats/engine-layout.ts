import type { NatsConnection } from "nats";
import { ENGINE_BUCKET, engineBucket } from "./engine-key.js";
import { STREAMS } from "./topology.js";

const KEY = "covisit_partitions";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** The item partitions a deployment's co-visitation state is laid out by, and whose it is. */
export interface CovisitLayout {
  partitions: number;
  /** `stored`: the deployment's record; `consumers`: found from its covisit consumers; `new`. */
  from: "stored" | "consumers" | "new";
}

/** COVISIT_PARTITIONS asks for a layout other than the deployment's. */
export class LayoutMismatchError extends Error {
  override name = "LayoutMismatchError";
}

/**
 * The item partitions of co-visitation (`covisit/<q>`) for this deployment, the same for every
 * process of it: each item's neighbour lists and counters live in the instance of its partition,
 * so a process that partitioned items otherwise would read and feed the wrong instances. Kept
 * in the engine's KV bucket beside the idle-marker key. The first process to start records it:
 * `setting` (COVISIT_PARTITIONS) if given, else what an existing deployment already runs (one
 * started before the layout was recorded: its covisit consumers' pair subjects,
 * `reco.pairs.<q>.*`, name its item partitions), else `fresh`. A `setting` other than the
 * recorded one fails: the state would have to be built again from the events.
 */
export async function covisitLayout(
  nc: NatsConnection,
  o: { setting?: number; fresh: number; replicas?: number },
): Promise<CovisitLayout> {
  const kv = await engineBucket(nc, o);
  const check = (held: number, from: CovisitLayout["from"]): CovisitLayout => {
    if (o.setting !== undefined && o.setting !== held)
      throw new LayoutMismatchError(
        `COVISIT_PARTITIONS=${o.setting} does not match this deployment's ${held} ` +
          `(its co-visitation state is partitioned by it): leave it unset, or set ${held}`,
      );
    return { partitions: held, from };
  };
  const read = async (): Promise<number | undefined> => {
    const e = await kv.get(KEY);
    if (e?.operation !== "PUT") return undefined;
    const n = Number(dec.decode(e.value));
    if (!Number.isInteger(n) || n < 1)
      throw new Error(
        `KV bucket ${ENGINE_BUCKET} holds ${KEY}=${dec.decode(e.value)}: not a count`,
      );
    return n;
  };
  const held = await read();
  if (held !== undefined) return check(held, "stored");
  const running = await consumersLayout(nc);
  const value = running ?? o.setting ?? o.fresh;
  try {
    await kv.create(KEY, enc.encode(String(value)));
  } catch {
    // Another process recorded it first (wrong last sequence): theirs holds, read below.
  }
  const now = await read();
  if (now === undefined)
    throw new Error(`no ${KEY} in KV bucket ${ENGINE_BUCKET} after recording it`);
  return check(now, now === running ? "consumers" : now === value ? "new" : "stored");
}

/** The item partitions the hops stream's covisit consumers read pairs of (undefined: none). */
async function consumersLayout(nc: NatsConnection): Promise<number | undefined> {
  const jsm = await nc.jetstreamManager();
  let most = -1;
  try {
    for await (const c of jsm.consumers.list(STREAMS.hops)) {
      const m = /^reco\.pairs\.(\d+)\.\*$/.exec(c.config.filter_subject ?? "");
      if (m) most = Math.max(most, Number(m[1]));
    }
  } catch (err) {
    // No hops stream yet: a new deployment.
    if (!/stream not found|404/i.test(String((err as Error).message ?? err))) throw err;
  }
  return most < 0 ? undefined : most + 1;
}
