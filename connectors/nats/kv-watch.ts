import type { KvEntry, NatsConnection, QueuedIterator } from "nats";
import { watchForStall } from "./stall.js";
import { createActor, type Actor } from "../../runtime/index.js";

/** What a bucket's watcher does with what the watch delivers. */
export interface KvWatchOptions {
  /** The actor's id (its supervisor restarts it under this name). */
  id: string;
  bucket: string;
  /** Applies one entry (a PUT, or a DEL/PURGE: `json()` then has nothing to read). */
  apply(e: KvEntry): void;
  /**
   * Called once the watch has delivered the bucket's content as it was when the watch began; the
   * actor's start waits for it (a table that answers before then would answer from nothing).
   */
  initialised?(): void;
  /** A processing-time trigger, in the actor's mailbox like the entries. */
  tick?: { everyMs: number; run(): void };
}

/**
 * An actor that keeps a table of this process current from a KV bucket: it watches the bucket,
 * applies each entry in its mailbox, and fails (its supervisor starts a fresh watch, which
 * delivers the bucket's current content again) when the watch ends with an error or goes silent
 * while the bucket's stream moves on (stall.ts).
 */
export function createKvWatchActor(nc: NatsConnection, o: KvWatchOptions): Actor<KvEntry | "tick"> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopStallWatch = () => undefined as void;
  let revision = 0;
  return createActor<KvEntry | "tick">({
    id: o.id,
    behavior: {
      async start(ctx) {
        const kv = await nc.jetstream().views.kv(o.bucket);
        let resolveInit: () => void = () => undefined;
        const init = o.initialised ? new Promise<void>((r) => (resolveInit = r)) : undefined;
        iter = await kv.watch(
          o.initialised
            ? {
                initializedFn: () => {
                  o.initialised!();
                  resolveInit();
                },
              }
            : {},
        );
        void (async () => {
          try {
            for await (const e of iter!) ctx.send(e);
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
          }
        })();
        if (o.tick) timer = setInterval(() => ctx.send("tick"), o.tick.everyMs);
        stopStallWatch = watchForStall(nc, `KV_${o.bucket}`, () => revision, ctx.fail);
        await init;
      },
      receive(m) {
        if (m === "tick") return o.tick?.run();
        revision = m.revision;
        o.apply(m);
      },
      stop() {
        clearInterval(timer);
        stopStallWatch();
        iter?.stop();
      },
    },
  });
}
