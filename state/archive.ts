import { promisify } from "node:util";
import { gunzip as gunzipCb, gzip as gzipCb } from "node:zlib";
import type { NatsConnection, ObjectStore } from "nats";

/**
 * On libuv's pool, not the event loop: a worker uploads every owned instance's whole snapshot
 * every ARCHIVE_INTERVAL_MS, and gzipSync took 5.6% of its main thread's busy time in bench step
 * 8 (one worker, 200,000 events, CPU profile, 2026-11-29): time its stages and gRPC waited.
 */
const gzip = promisify(gzipCb);
/**
 * zlib's fastest level: every copy of a MovieLens replay's 75 instances (37.2 MB of JSON) in
 * 394 ms and 13.4 MB, against 688 ms and 12.2 MB at the default level 6 (idle machine,
 * 2026-11-29). A round of copies costs its worker's CPU beside the stages; storage is cheap.
 */
const GZIP_LEVEL = 1;
const gunzip = promisify(gunzipCb);

/**
 * Snapshots kept in a JetStream object store, so a worker on another machine can restore a
 * partition's state and replay its input from the snapshot's sequence (DESIGN §6).
 *
 * No fencing is needed for correctness: processing is a deterministic function of the input, so
 * any snapshot at sequence S holds the same state whoever wrote it. A restore takes whichever
 * snapshot, local or archived, covers the higher sequence; the replay does the rest.
 */
export interface InstanceSnapshot {
  /** Stage metadata; `seq` is the input sequence the state covers. */
  meta: Record<string, unknown>;
  /** Raw state entries as stored in the instance's sublevel (map\0key -> value). */
  entries: [string, unknown][];
}

export interface SnapshotArchive {
  /** Uploads the snapshot (replacing the instance's last one): its compressed bytes. */
  put(stage: string, partition: number, snapshot: InstanceSnapshot): Promise<number>;
  get(stage: string, partition: number): Promise<InstanceSnapshot | undefined>;
  /**
   * The instance's archived copy, from the object's metadata without downloading it: undefined
   * for none; `seq` the sequence it covers (undefined for a copy uploaded without it: get()
   * tells), `bytes` its compressed size.
   */
  about(stage: string, partition: number): Promise<{ seq?: number; bytes: number } | undefined>;
}

export const SNAPSHOT_BUCKET = "reco_snapshots";

export async function openSnapshotArchive(
  nc: NatsConnection,
  options: { replicas?: number } = {},
): Promise<SnapshotArchive> {
  const os: ObjectStore = await nc
    .jetstream()
    .views.os(SNAPSHOT_BUCKET, { replicas: options.replicas ?? 1 });
  const name = (stage: string, partition: number) => `${stage}.${partition}`;
  return {
    async put(stage, partition, snapshot) {
      const data = await gzip(Buffer.from(JSON.stringify(snapshot)), { level: GZIP_LEVEL });
      await os.putBlob(
        { name: name(stage, partition), metadata: { seq: String(seqOf(snapshot)) } },
        new Uint8Array(data),
      );
      return data.length;
    },
    async get(stage, partition) {
      const blob = await os.getBlob(name(stage, partition));
      if (!blob) return undefined;
      return JSON.parse((await gunzip(blob)).toString("utf8")) as InstanceSnapshot;
    },
    async about(stage, partition) {
      const info = await os.info(name(stage, partition));
      if (!info || info.deleted) return undefined;
      const seq = info.metadata?.seq;
      return seq === undefined ? { bytes: info.size } : { seq: Number(seq), bytes: info.size };
    },
  };
}

/**
 * How long a takeover waits for an archived copy of `bytes` (compressed) once the archive has
 * answered: its download, gunzip and JSON parse, at 5 MB of the compressed copy a second on a
 * loaded machine, beside the 5 s any answer may take. (With a fixed 5 s, a copy that took longer
 * was dropped and the unit replayed its input from its own snapshot, from the start on a worker
 * new to it: a MovieLens replay's 75 copies are 13.4 MB, a million users' state 270 MiB on
 * disk.)
 */
export const downloadTimeoutMs = (bytes: number) => 5_000 + Math.ceil(bytes / 5_000);

/** The sequence a snapshot covers (0 for none). */
export const seqOf = (s: InstanceSnapshot | undefined) => Number(s?.meta.seq ?? 0);
