import { describe, expect, it, vi } from "vitest";
import { Subject } from "rxjs";
import type { SupervisorEvent } from "../runtime/index.js";
import { explainError, healthBody, watchStages, watchStateDb } from "../bin/health.js";
import { StateStoreWriteError, type SnapshotStore, type StateDb } from "../state/index.js";

/** The rules of the stage check, on an injected clock. */
describe("a stage that keeps failing", () => {
  const setup = (failingMs: number) => {
    let t = 1_000_000;
    const events$ = new Subject<SupervisorEvent>();
    const running = new Set<string>();
    const w = watchStages(events$, (id) => (running.has(id) ? "running" : "starting"), {
      failingMs,
      recoveredAfterMs: 10_000,
      now: () => t,
    });
    const fail = (id: string, error: unknown) =>
      events$.next({ type: "child-failed", childId: id, error, restarts: 0 });
    return {
      w,
      fail,
      running,
      advance: (ms: number) => (t += ms),
      now: () => t,
    };
  };

  it("is reported once it has been failing for longer than the setting, naming it and the error", () => {
    const s = setup(30_000);
    s.fail("popularity/3", new Error("boom"));
    s.advance(29_000);
    s.fail("popularity/3", new Error("boom again"));
    expect(s.w.check(s.now())).toEqual([]);
    s.advance(1_000);
    const [p] = s.w.check(s.now());
    expect(p?.check).toBe("stage");
    expect(p?.reason).toMatch(
      /^popularity\/3 has been failing for 30 s \(2 failures\): boom again/,
    );
    expect(p?.reason).toContain("the first failure: boom");
  });

  it("counts as recovered only after running without a failure for a while", () => {
    const s = setup(0);
    s.fail("window/0", new Error("x"));
    s.running.add("window/0");
    s.advance(5_000);
    expect(s.w.check(s.now())).toHaveLength(1); // running again, but only for 5 s
    s.advance(5_000);
    expect(s.w.check(s.now())).toEqual([]);
    s.fail("window/0", new Error("y"));
    expect(s.w.check(s.now())).toHaveLength(1); // failing anew: the clock starts again
  });

  it("that recovered while nobody read the check, and fails once more, is failing anew", () => {
    vi.useFakeTimers();
    try {
      const s = setup(15_000);
      s.fail("covisit/0", new Error("insufficient resources"));
      s.running.add("covisit/0");
      // A minute running without a failure, the check not read meanwhile (as /livez is).
      for (let k = 0; k < 60; k++) {
        s.advance(1_000);
        vi.advanceTimersByTime(1_000);
      }
      s.fail("covisit/0", new Error("x"));
      s.advance(1_000);
      expect(s.w.check(s.now())).toEqual([]);
      s.w.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it("is still failing while it restarts, however rarely it gets to fail", () => {
    const s = setup(1_000);
    s.fail("parse/0", new Error("503"));
    s.advance(60_000); // not running: in backoff or hanging in start
    expect(s.w.check(s.now())[0]?.reason).toMatch(/parse\/0 has been failing for 60 s/);
  });
});

it("a failing stage that is no longer supervised (a worker's unit handed over) is forgotten", () => {
  let t = 0;
  const events$ = new Subject<SupervisorEvent>();
  const w = watchStages(events$, () => undefined, { failingMs: 0, now: () => t });
  events$.next({ type: "child-failed", childId: "window/1", error: new Error("x"), restarts: 0 });
  t += 30_000; // no instance: in backoff, or gone
  expect(w.check(t)).toHaveLength(1);
  t += 30_000; // a stage in backoff would have failed again long ago
  expect(w.check(t)).toEqual([]);
});

describe("reasons an operator can act on", () => {
  it("says where to look for JetStream's 'insufficient resources' and its 503s", () => {
    expect(explainError(new Error("insufficient resources"))).toMatch(
      /disk is full or its storage limits \(max_file_store/,
    );
    expect(explainError(new Error("503"))).toMatch(/disabled JetStream.*store is full/);
    expect(explainError(new Error("IO error: x.log: No space left on device"))).toMatch(
      /^disk full/,
    );
  });

  it("the /healthz body names the oldest problem as the reason", () => {
    const body = healthBody(
      [
        { check: "nats", reason: "NATS unreachable for 3 s", since: 1 },
        { check: "stage", reason: "x", since: 2 },
      ],
      true,
    );
    expect(body.ok).toBe(false);
    expect(body.detail.reason).toBe("NATS unreachable for 3 s");
    expect(healthBody([], false).detail.reason).toMatch(/starting/);
    expect(healthBody([], true)).toMatchObject({ ok: true, detail: { problems: [] } });
  });
});

describe("the state check", () => {
  const notOpen = () =>
    Object.assign(new Error("Database is not open"), { code: "LEVEL_DATABASE_NOT_OPEN" });
  const full = () =>
    Object.assign(new Error("IO error: /x/state/000012.log: No space left on device"), {
      code: "LEVEL_IO_ERROR",
    });
  /** A store whose writes fail with the errors given, in turn, then succeed. */
  const failingDb = (errors: Error[]): StateDb => {
    const store = {
      write: () => {
        const err = errors.shift();
        return err
          ? Promise.reject(new StateStoreWriteError("/x/state", err))
          : Promise.resolve([]);
      },
    } as unknown as SnapshotStore;
    return { instance: () => store } as unknown as StateDb;
  };

  it("names the disk full although a write first found the store closed by a reopen", async () => {
    let t = 5_000;
    const w = watchStateDb(failingDb([notOpen(), full(), notOpen()]), "/x/state", {
      onCorrupt: () => undefined,
      now: () => t,
    });
    const store = w.db.instance("window", 0);
    for (let i = 0; i < 3; i++) {
      await store.write({} as never).catch(() => undefined);
      t += 100;
    }
    const [p] = w.check(t);
    expect(p?.reason).toBe(
      "state cannot be written to /x/state for 0.3 s: disk full (cannot write to the state store /x/state: IO error: /x/state/000012.log: No space left on device)",
    );
    await store.write({} as never);
    expect(w.check(t)).toEqual([]);
  });
});
