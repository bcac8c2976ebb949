import { randomBytes } from "node:crypto";
import type { KV, NatsConnection } from "nats";

/** KV bucket of the engine's own secrets (publishers have no business there). */
export const ENGINE_BUCKET = "reco_engine";
const MARKER_KEY = "idle_marker_key";

/** The engine's KV bucket (created at the first use): one value per key, `replicas` copies. */
export const engineBucket = (nc: NatsConnection, opts: { replicas?: number } = {}): Promise<KV> =>
  nc.jetstream().views.kv(ENGINE_BUCKET, { history: 1, replicas: opts.replicas ?? 1 });

/**
 * The key parse signs its idle markers with (a forged `events._idle` message moved
 * event time to year 9999). Made at the first start, 32 random bytes, and kept in a KV bucket of
 * the same NATS store as EVENTS, so every process and worker that runs parse, now or after a
 * restart or a handover, reads the same key, and a replay of EVENTS trusts the same markers.
 * `create` lets exactly one of several processes starting together write it.
 */
export async function engineMarkerKey(
  nc: NatsConnection,
  opts: { replicas?: number } = {},
): Promise<Uint8Array> {
  const kv = await engineBucket(nc, opts);
  const held = await kv.get(MARKER_KEY);
  if (held?.operation === "PUT" && held.value.length > 0) return held.value;
  try {
    await kv.create(MARKER_KEY, randomBytes(32));
  } catch {
    // Another process created it first (wrong last sequence): read theirs below.
  }
  const e = await kv.get(MARKER_KEY);
  if (e?.operation !== "PUT" || e.value.length === 0)
    throw new Error(`no idle-marker key in KV bucket ${ENGINE_BUCKET} after creating one`);
  return e.value;
}
