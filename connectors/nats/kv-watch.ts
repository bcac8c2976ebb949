import { Events, type KvEntry, type NatsConnection, type QueuedIterator } from "nats";
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
 *
 * After a reconnect it watches again from the revision after the last one applied. The watch is
 * an ordered consumer; when the server restarted, the client re-creates it only once its idle
 * heartbeats are missed: a put right after a nats-server restart reached the old watch 9-13 s
 * later (nats 2.29, nats-server 2.9.10, measured), and the table answered from before the
 * restart that long.
 */
export function createKvWatchActor(nc: NatsConnection, o: KvWatchOptions): Actor<KvEntry | "tick"> {
  let iter: QueuedIterator<KvEntry> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopStallWatch = () => undefined as void;
  let stopReconnectWatch = () => undefined as void;
  let revision = 0;
  /** Bumped at every new watch: a replaced watch's late deliveries are dropped. */
  let generation = 0;
  return createActor<KvEntry | "tick">({
    id: o.id,
    behavior: {
      async start(ctx) {
        const kv = await nc.jetstream().views.kv(o.bucket);
        const follow = (watch: QueuedIterator<KvEntry>) => {
          const mine = ++generation;
          iter = watch;
          void (async () => {
            try {
              for await (const e of watch) if (mine === generation) ctx.send(e);
            } catch (err) {
              if (!ctx.signal.aborted && mine === generation) ctx.fail(err);
            }
          })();
        };
        let resolveInit: () => void = () => undefined;
        const init = o.initialised ? new Promise<void>((r) => (resolveInit = r)) : undefined;
        follow(
          await kv.watch(
            o.initialised
              ? {
                  initializedFn: () => {
                    o.initialised!();
                    resolveInit();
                  },
                }
              : {},
          ),
        );
        if (o.tick) timer = setInterval(() => ctx.send("tick"), o.tick.everyMs);
        stopStallWatch = watchForStall(nc, `KV_${o.bucket}`, () => revision, ctx.fail);
        stopReconnectWatch = onReconnect(nc, async () => {
          if (ctx.signal.aborted) return;
          const old = iter;
          // Entries already in the mailbox are applied first; from then on only the new watch's.
          const from = revision + 1;
          try {
            follow(await kv.watch(revision > 0 ? { resumeFromRevision: from } : {}));
          } catch (err) {
            if (!ctx.signal.aborted) ctx.fail(err);
            return;
          }
          old?.stop();
        });
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
        stopReconnectWatch();
        iter?.stop();
      },
    },
  });
}

/** Calls `fn` after every reconnect of `nc` until the returned function is called. */
function onReconnect(nc: NatsConnection, fn: () => Promise<void>): () => void {
  const status = nc.status();
  void (async () => {
    for await (const s of status) if (s.type === Events.Reconnect) await fn();
  })().catch(() => undefined);
  return () => (status as unknown as { stop?: () => void }).stop?.();
}
