import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { openStateDb, type StateDb } from "../../state/index.js";
import { setupNats, type TestNats } from "./nats.js";

/**
 * What integration tests set up again and again: waiting for a condition, a
 * teardown list run after the file's tests, a private nats-server with a connection, a LevelDB
 * state store in a temporary directory.
 */

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `pred` every `everyMs` until it holds or `ms` passed; says whether it held. */
export async function until(pred: () => boolean, ms = 15_000, everyMs = 25): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Like `until`, but throws "timed out waiting for <what>" when it does not hold in time. */
export async function waitFor(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  if (!(await until(pred, ms))) throw new Error(`timed out waiting for ${what}`);
}

/** `until` for an async condition: polls `ok` every `everyMs` until it holds or `ms` passed. */
export async function untilAsync(
  ok: () => Promise<boolean>,
  ms: number,
  everyMs = 100,
): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await ok()) return true;
    await sleep(everyMs);
  }
  return ok();
}

/**
 * An `eventually(fn, ok, ms?)` for a file: calls `fn` every `everyMs` until `ok` holds of its
 * value or `ms` passed, and returns the last value (the caller's assertion says what was wrong).
 * With `keepOnError`, a call that throws (a server restarting) keeps the value before it.
 */
export function poller(o: { ms: number; everyMs: number; keepOnError?: boolean }) {
  return async function eventually<T>(
    fn: () => Promise<T>,
    ok: (v: T) => boolean,
    ms = o.ms,
  ): Promise<T> {
    const end = Date.now() + ms;
    let v = await fn();
    while (!ok(v) && Date.now() < end) {
      await sleep(o.everyMs);
      v = o.keepOnError ? await fn().catch(() => v) : await fn();
    }
    return v;
  };
}

export type Cleanup = () => Promise<unknown> | unknown;

/**
 * A teardown list for the calling file: `add` in setup order, run in reverse after all its tests
 * (a failing step does not stop the others). Call at the top of a describe block.
 */
export function useCleanups(): { add(c: Cleanup): void } {
  const list: Cleanup[] = [];
  afterAll(async () => {
    for (const c of list.reverse()) await Promise.resolve(c()).catch(() => undefined);
  });
  return { add: (c) => void list.push(c) };
}

export interface NatsHarness {
  nats: TestNats;
  nc: NatsConnection;
  jsm: JetStreamManager;
}

/** A private nats-server and a connection to it, both torn down with `cleanups`. */
export async function startNats(cleanups: { add(c: Cleanup): void }): Promise<NatsHarness> {
  const nats = await setupNats();
  cleanups.add(() => nats.cleanup());
  const nc = await connect({ servers: nats.url });
  cleanups.add(() => nc.close());
  return { nats, nc, jsm: await nc.jetstreamManager() };
}

/** A LevelDB state store in a fresh temporary directory, closed and removed with `cleanups`. */
export async function tempStateDb(
  cleanups: { add(c: Cleanup): void },
  prefix = "reco-test-",
): Promise<StateDb> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanups.add(() => rm(dir, { recursive: true, force: true }));
  const db = await openStateDb(dir);
  cleanups.add(() => db.close());
  return db;
}
