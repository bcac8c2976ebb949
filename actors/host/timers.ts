import { interval, timer, type SchedulerLike, type Subscription } from "rxjs";
import { startBatchTimer, type BatchTimer } from "./batching.js";
import type { HostMsg, InputMessage, StageHandler, StageSpec } from "./types.js";

export interface HostTimerOptions {
  id: string;
  spec: StageSpec<StageHandler>;
  scheduler: SchedulerLike;
  snapshotIntervalMs: number;
  buffered(): { records: number; since: number; subjects: number };
  backlogged(): boolean;
  reportMetrics?(): void;
  /** The oldest input hop waiting for a missing one (hop-order.ts). */
  oldestWaiting(): { item: InputMessage; upTo: number; prev: number; since: number } | undefined;
  /** The input position applied. */
  applied(): number;
  /** The message the handler has held longest (StageHandler.heldLongest). */
  heldLongest?(): ReturnType<NonNullable<StageHandler["heldLongest"]>>;
  /** The handler has a processing-time trigger. */
  ticks: boolean;
  send(msg: HostMsg): void;
  fail(err: Error): void;
}

/**
 * The host's timers, all on the injected scheduler; each asks the actor through its mailbox, in
 * order with the input: output batching, periodic snapshots, metrics, the wait for a missing hop
 * and the stage's processing-time trigger. `batch.poke` arms the output batching's timer (see
 * batching.ts): the host calls it after each message it handles.
 */
export function startHostTimers(o: HostTimerOptions): {
  timers: Subscription[];
  batch: Pick<BatchTimer, "poke">;
} {
  const { spec, scheduler, id } = o;
  const timers: Subscription[] = [];
  let batch: Pick<BatchTimer, "poke"> = { poke: () => undefined };
  if (spec.batching !== "per-input") {
    const t = startBatchTimer({
      maxDelayMs: spec.batching.maxDelayMs,
      scheduler,
      buffered: o.buffered,
      backlogged: o.backlogged,
      flush: () => o.send({ kind: "flush" }),
    });
    timers.push(t.subscription);
    batch = t;
  }
  // Periodic snapshots, each instance at its own phase of the interval: started together,
  // ~50 instances captured in the same turn and stalled the event loop for ~80 ms every
  // interval (a freshness outlier each time).
  const every = o.snapshotIntervalMs * (spec.snapshotIntervals ?? 1);
  timers.push(
    timer(Math.floor(every * phaseOf(id)), every, scheduler).subscribe(() =>
      o.send({ kind: "snapshot" }),
    ),
  );
  if (o.reportMetrics) timers.push(interval(250, scheduler).subscribe(o.reportMetrics));
  if (spec.input === "envelope")
    timers.push(
      interval(1000, scheduler).subscribe(() => {
        // The missing hop never came (its producer's retries and restarts would have sent it
        // by now): fail loudly, rather than apply what follows it and lose its records.
        const w = o.oldestWaiting();
        if (w !== undefined && Date.now() - w.since > HOP_WAIT_MS)
          o.fail(
            new Error(
              `${id}: the hop before ${w.upTo} on ${w.item.subject} (after ` +
                `${w.prev}; applied ${o.applied()}) has not arrived in ${HOP_WAIT_MS} ms`,
            ),
          );
      }),
    );
  if (o.heldLongest !== undefined) {
    const held = o.heldLongest;
    timers.push(
      interval(1000, scheduler).subscribe(() => {
        // As above, for a hop a merged input holds for its subject's missing one.
        const h = held();
        if (h !== undefined && Date.now() - h.since > HOP_WAIT_MS)
          o.fail(
            new Error(
              `${id}: the hop before the one on ${h.subject} after ${h.prev} (applied ` +
                `${h.applied}) has not arrived in ${HOP_WAIT_MS} ms`,
            ),
          );
      }),
    );
  }
  if (o.ticks && spec.tickMs)
    timers.push(interval(spec.tickMs, scheduler).subscribe(() => o.send({ kind: "tick" })));
  return { timers, batch };
}

/** How long a hop may wait for the one before it (see hop-order.ts) before the instance fails. */
const HOP_WAIT_MS = 60_000;

/** A fixed fraction in [0, 1) per instance id (FNV-1a), to spread periodic work. */
function phaseOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) / 4294967296;
}
