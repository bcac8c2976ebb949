import type { ServerWritableStream } from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import {
  TrendingUpdateSchema,
  type StreamTrendingRequest,
  type TrendingUpdate,
} from "../../proto/gen/reco/v1/reco_pb.js";
import type { TrendingSnapshot, TrendingWindowName } from "../../actors/contract/index.js";
import { toTrendingUpdate, windowEnum } from "./codec.js";

/**
 * Finals a blocked trending subscriber may hold besides the newest non-final update. A final is
 * the settled answer for a window, so it is kept until written: one step of event time can close
 * dozens of windows at once (a 48 h jump closes 48 of the 24 h windows), and grpc-js reports
 * backpressure after ~16 queued messages even for a client that reads promptly. Only a client
 * stuck for STUCK_MS loses old finals beyond MAX_FINALS_WHEN_STUCK; MAX_PENDING_FINALS bounds
 * memory in any case.
 */
const MAX_PENDING_FINALS = 1024;
const MAX_FINALS_WHEN_STUCK = 4;
const STUCK_MS = 30_000;

/**
 * Writes snapshots to one StreamTrending call without ever queueing without bound. While the
 * call accepts writes they go straight through; once `write()` reports backpressure, only the
 * newest non-final snapshot is held (latest-wins), plus finals, which are never superseded by a
 * non-final (they are the settled answer for their window). Flushes on `drain`.
 */
export function createTrendingWriter(
  call: ServerWritableStream<StreamTrendingRequest, TrendingUpdate>,
  k: number,
  onDropped: (count: number) => void,
): {
  offer(snapshot: TrendingSnapshot): void;
  /** Sends a heartbeat if nothing was written for `quietMs` and the call takes writes. */
  heartbeat(window: TrendingWindowName, quietMs: number): void;
  close(): void;
} {
  let pending: TrendingSnapshot[] = [];
  let blocked = false;
  let blockedSince = 0;
  let closed = false;
  let lastWrite = Date.now();
  let latest: TrendingSnapshot | undefined;

  const send = (update: TrendingUpdate): void => {
    lastWrite = Date.now();
    if (!call.write(update)) {
      blocked = true;
      blockedSince = Date.now();
      call.once("drain", flush);
    }
  };
  const write = (snapshot: TrendingSnapshot): void => {
    latest = snapshot;
    lastWrite = Date.now();
    if (!call.write(toTrendingUpdate(snapshot, k))) {
      blocked = true;
      blockedSince = Date.now();
      call.once("drain", flush);
    }
  };
  function flush(): void {
    blocked = false;
    while (!closed && !blocked && pending.length > 0) write(pending.shift() as TrendingSnapshot);
  }
  const enqueue = (snapshot: TrendingSnapshot): void => {
    const before = pending.length;
    // A newer snapshot supersedes pending non-finals: any window's if it is non-final itself
    // (there is only one newest window), its own window's if it is final.
    pending = pending.filter(
      (p) => p.final || (snapshot.final && p.windowStart !== snapshot.windowStart),
    );
    let dropped = before - pending.length;
    pending.push(snapshot);
    const finals = pending.filter((p) => p.final);
    const stuck = Date.now() - blockedSince > STUCK_MS;
    if (finals.length > MAX_PENDING_FINALS || (stuck && finals.length > MAX_FINALS_WHEN_STUCK)) {
      const oldest = finals[0];
      pending = pending.filter((p) => p !== oldest);
      dropped += 1;
    }
    if (dropped > 0) onDropped(dropped);
  };

  return {
    offer(snapshot) {
      if (closed) return;
      if (blocked) enqueue(snapshot);
      else write(snapshot);
    },
    heartbeat(window, quietMs) {
      if (closed || blocked || Date.now() - lastWrite < quietMs) return;
      send(
        latest
          ? toTrendingUpdate(latest, k, true)
          : create(TrendingUpdateSchema, { window: windowEnum(window), heartbeat: true }),
      );
    },
    close() {
      closed = true;
      pending = [];
      call.removeListener("drain", flush);
    },
  };
}
