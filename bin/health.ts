import type { NatsConnection } from "nats";
import type { Observable } from "rxjs";
import type { SupervisorEvent } from "../runtime/index.js";
import {
  StateStoreCorruptError,
  type SnapshotBatch,
  type SnapshotStore,
  type StateDb,
} from "../state/index.js";

/**
 * What `/healthz` and gRPC health report: the process is not healthy while NATS is
 * unreachable, a stage has been failing for longer than HEALTH_STAGE_FAILING_MS, or the state
 * store cannot be written. Every check keeps its own verdict up to date from events and
 * background probes, so a health request only reads memory: it never waits for NATS (a handler
 * that did would hang exactly when NATS is the problem).
 */
export interface HealthProblem {
  /** `nats`, `stage`, `state`, `parse-process`. */
  check: string;
  /** One sentence for an operator: what, since when, and the error. */
  reason: string;
  /** Epoch ms since when. */
  since: number;
}

/** One source of problems, read at every health request (no I/O). */
export type HealthCheck = (now: number) => HealthProblem[];

const secs = (ms: number) => `${Math.max(0, Math.round(ms / 100) / 10)} s`;

/**
 * Error text an operator can act on. JetStream says "insufficient resources" when its store has
 * no room (the disk, or its limits), which does not say where to look.
 */
export function explainError(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  if (/insufficient resources/i.test(text))
    return `JetStream cannot store messages (${text}): the NATS server's disk is full or its storage limits (max_file_store, account or stream limits) are reached`;
  if (/no space left on device/i.test(text)) return `disk full (${text})`;
  if (/^503$|no responders/i.test(text)) return `JetStream is not answering (${text}): ${JS_DOWN}`;
  return text;
}

/**
 * nats-server 2.9 disables JetStream for good (until restarted) when its store passes the disk
 * or `max_file_store` ("JetStream resource limits exceeded for server"); every JetStream request
 * then gets 503 "no responders".
 */
const JS_DOWN =
  "the NATS server may have disabled JetStream, which it does when its store is full (disk or max_file_store; its log says so): free space and restart it";

export interface NatsWatch {
  check: HealthCheck;
  stop(): void;
}

/**
 * NATS reachability from the connection's status events (a dead server is noticed as a
 * disconnect at once) and a ping every `probeEveryMs` (a server that holds the socket open but
 * does not answer, or a stale route, is noticed after `probeTimeoutMs`); JetStream's from a
 * `$JS.API.INFO` request every `jsProbeEveryMs`, reported after `jsGraceMs` of failures (a
 * cluster electing a leader does not answer for a few seconds).
 */
export function watchNats(
  nc: NatsConnection,
  o: {
    probeEveryMs?: number;
    probeTimeoutMs?: number;
    jsProbeEveryMs?: number;
    jsGraceMs?: number;
    now?: () => number;
  } = {},
): NatsWatch {
  const now = o.now ?? Date.now;
  const timeoutMs = o.probeTimeoutMs ?? 3_000;
  const jsGraceMs = o.jsGraceMs ?? 5_000;
  let down: { since: number; why: string } | undefined;
  let lastError = "";
  let pingSince: number | undefined;
  let jsDown: { since: number; why: string } | undefined;
  let jsAsking = false;
  const jsProbe = setInterval(() => {
    if (jsAsking || nc.isClosed() || down) return;
    jsAsking = true;
    nc.request("$JS.API.INFO", undefined, { timeout: 2_000 }).then(
      (m) => {
        jsAsking = false;
        const err = (m.json() as { error?: { description?: string } }).error;
        if (!err) jsDown = undefined;
        else jsDown ??= { since: now(), why: err.description ?? "error" };
      },
      (err: unknown) => {
        jsAsking = false;
        jsDown ??= { since: now(), why: err instanceof Error ? err.message : String(err) };
      },
    );
  }, o.jsProbeEveryMs ?? 2_000);
  jsProbe.unref();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") down ??= { since: now(), why: `disconnected from ${s.data}` };
      else if (s.type === "reconnect") down = undefined;
      else if (s.type === "error") lastError = String(s.data);
    }
  })().catch(() => undefined);
  const probe = setInterval(() => {
    if (pingSince !== undefined || nc.isClosed()) return;
    pingSince = now();
    nc.flush().then(
      () => (pingSince = undefined),
      () => (pingSince = undefined),
    );
  }, o.probeEveryMs ?? 1_000);
  probe.unref();
  return {
    check(at) {
      const err = lastError ? `; last error: ${lastError}` : "";
      if (nc.isClosed())
        return [{ check: "nats", reason: `the NATS connection is closed${err}`, since: at }];
      if (down)
        return [
          {
            check: "nats",
            reason: `NATS unreachable for ${secs(at - down.since)} (${down.why}${err})`,
            since: down.since,
          },
        ];
      if (pingSince !== undefined && at - pingSince > timeoutMs)
        return [
          {
            check: "nats",
            reason: `NATS has not answered a ping for ${secs(at - pingSince)}`,
            since: pingSince,
          },
        ];
      if (jsDown && at - jsDown.since >= jsGraceMs)
        return [
          {
            check: "jetstream",
            reason: `JetStream has not answered for ${secs(at - jsDown.since)} (${jsDown.why}): ${JS_DOWN}`,
            since: jsDown.since,
          },
        ];
      return [];
    },
    stop: () => {
      clearInterval(probe);
      clearInterval(jsProbe);
    },
  };
}

/**
 * Stages (supervised actors) that keep failing. A failure starts the clock; the stage counts as
 * recovered once it runs again and has not failed for `recoveredAfterMs` (a stage that restarts
 * every few seconds is failing, not recovered). Reported once failing for `failingMs`. A stage
 * with no live instance that has not failed for `forgetAfterMs` is gone (a worker's unit handed
 * over), not failing: in backoff, a failing one fails again within the backoff cap (5 s).
 *
 * Recoveries are looked for every second, not only when the check is read: /livez is
 * read rarely, and a stage that had recovered in between and failed once more was reported as
 * failing since its first failure of long before (a supervisor would restart a healthy process).
 */
export function watchStages(
  events$: Observable<SupervisorEvent>,
  status: (id: string) => string | undefined,
  o: {
    failingMs: number;
    recoveredAfterMs?: number;
    forgetAfterMs?: number;
    check?: string;
    now?: () => number;
  },
): { check: HealthCheck; stop(): void } {
  const now = o.now ?? Date.now;
  const recoveredAfter = o.recoveredAfterMs ?? 10_000;
  const forgetAfter = o.forgetAfterMs ?? 60_000;
  const failing = new Map<
    string,
    { since: number; last: number; error: unknown; first: unknown; n: number }
  >();
  const sub = events$.subscribe((e) => {
    if (e.type !== "child-failed") return;
    const f = failing.get(e.childId);
    if (f) Object.assign(f, { last: now(), error: e.error, n: f.n + 1 });
    else
      failing.set(e.childId, { since: now(), last: now(), error: e.error, first: e.error, n: 1 });
  });
  /** Forgets the stages that recovered (or are gone) by `at`. */
  const sweep = (at: number) => {
    for (const [id, f] of failing) {
      const st = status(id);
      const quiet = at - f.last;
      if (
        (st === "running" && quiet >= recoveredAfter) ||
        (st === undefined && quiet >= forgetAfter)
      )
        failing.delete(id);
    }
  };
  const timer = setInterval(() => {
    if (failing.size > 0) sweep(now());
  }, 1000);
  timer.unref();
  return {
    check(at) {
      sweep(at);
      const out: HealthProblem[] = [];
      for (const [id, f] of failing) {
        if (at - f.since >= o.failingMs) {
          // The first error often says why (insufficient resources), the later ones only how.
          const [last, first] = [explainError(f.error), explainError(f.first)];
          const also = first !== last ? `; the first failure: ${first}` : "";
          out.push({
            check: o.check ?? "stage",
            reason: `${id} has been failing for ${secs(at - f.since)} (${f.n} failures): ${last}${also}`,
            since: f.since,
          });
        }
      }
      return out;
    },
    stop: () => {
      sub.unsubscribe();
      clearInterval(timer);
    },
  };
}

/**
 * Wraps a state store to see its writes: while the last snapshot write failed (disk full, I/O
 * error) the state cannot be written, until one succeeds. A corrupt store (found on load or on a
 * write) is handed to `onCorrupt`: retrying cannot help, the process must stop and say so.
 */
export function watchStateDb(
  db: StateDb,
  path: string,
  o: { onCorrupt: (err: StateStoreCorruptError) => void; now?: () => number },
): { db: StateDb; check: HealthCheck } {
  const now = o.now ?? Date.now;
  let failing: { since: number; error: unknown } | undefined;
  const seen = <T>(p: Promise<T>, writing: boolean): Promise<T> =>
    p.then(
      (v) => {
        if (writing) failing = undefined;
        return v;
      },
      (err: unknown) => {
        if (err instanceof StateStoreCorruptError) o.onCorrupt(err);
        else if (writing) {
          // A write that found the store closed (by a reopen after the first failure) says less
          // than the failure itself: the reason keeps the most telling error, the first time.
          if (!failing) failing = { since: now(), error: err };
          else if (onlyNotOpen(failing.error) && !onlyNotOpen(err)) failing.error = err;
        }
        throw err;
      },
    );
  const wrap = (s: SnapshotStore): SnapshotStore => ({
    ...s,
    load: () => seen(s.load(), false),
    exportRaw: () => seen(s.exportRaw(), false),
    capture(state) {
      const batch = s.capture(state);
      return { keys: batch.keys, commit: () => seen(batch.commit(), true) } as SnapshotBatch;
    },
    write: (state) => seen(s.write(state), true),
  });
  return {
    db: { ...db, instance: (stage, partition) => wrap(db.instance(stage, partition)) },
    check: (at) =>
      failing
        ? [
            {
              check: "state",
              reason: `state cannot be written to ${path} for ${secs(at - failing.since)}: ${explainError(failing.error)}`,
              since: failing.since,
            },
          ]
        : [],
  };
}

/** LevelDB's "Database is not open": the store was closed under a write, no cause given. */
function onlyNotOpen(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (!/Database is not open/i.test(e.message)) return false;
  }
  return true;
}

/** Every check's problems now, oldest first. */
export function healthProblems(checks: readonly HealthCheck[], now = Date.now()): HealthProblem[] {
  return checks.flatMap((c) => c(now)).sort((a, b) => a.since - b.since);
}

/** The `/healthz` body: `reason` names the first problem, `problems` lists them all. */
export function healthBody(
  problems: readonly HealthProblem[],
  ready: boolean,
  extra: Record<string, unknown> = {},
): { ok: boolean; detail: Record<string, unknown> } {
  const ok = ready && problems.length === 0;
  const reason = problems[0]?.reason ?? (ready ? undefined : "starting: not every stage runs yet");
  return {
    ok,
    detail: {
      ...(reason !== undefined ? { reason } : {}),
      ready,
      problems: problems.map((p) => ({
        check: p.check,
        reason: p.reason,
        since: new Date(p.since).toISOString(),
      })),
      ...extra,
    },
  };
}
