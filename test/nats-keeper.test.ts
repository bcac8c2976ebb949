import { describe, expect, it } from "vitest";
import { pino } from "pino";
import type { EmbeddedNats } from "../connectors/nats/embedded-server.js";
import { keepPrivateNats, procState } from "../bin/nats-keeper.js";

/** A server that stops when told and can be made to exit by itself. */
function fakeServer(pid: number) {
  let exit: (code: number | null) => void = () => undefined;
  const exited = new Promise<number | null>((r) => (exit = r));
  const s: EmbeddedNats & { stops: number; die(): void } = {
    url: "nats://127.0.0.1:1",
    port: 1,
    pid,
    stops: 0,
    stop: async () => {
      s.stops++;
      exit(0);
    },
    kill: async () => exit(null),
    exited: () => exited,
    die: () => exit(1),
  };
  return s;
}

const tick = () => new Promise((r) => setTimeout(r, 30));

describe("the private nats-server keeper", () => {
  it("restarts a server that has not answered for the set time, unless stopped or without room", async () => {
    let t = 0;
    let down: { since: number; why: string } | undefined;
    let st = "S";
    let room = true;
    const started: ReturnType<typeof fakeServer>[] = [];
    const first = fakeServer(100);
    const k = keepPrivateNats({
      first,
      start: async () => {
        const s = fakeServer(101 + started.length);
        started.push(s);
        return s;
      },
      notAnsweringSince: () => down,
      restartAfterMs: 10_000,
      log: pino({ level: "silent" }),
      checkEveryMs: 10,
      now: () => t,
      processState: () => st,
      hasRoom: () => room,
    });
    down = { since: 0, why: "NATS has not answered a ping" };
    t = 9_000;
    await tick();
    expect(k.restarts()).toBe(0);
    // SIGSTOPped: whoever stopped it will SIGCONT it.
    st = "T";
    t = 20_000;
    await tick();
    expect(k.restarts()).toBe(0);
    // The disk still full: a server started now would come up without its streams.
    st = "S";
    room = false;
    await tick();
    expect(k.restarts()).toBe(0);
    room = true;
    await tick();
    expect([k.restarts(), first.stops, k.server().pid]).toEqual([1, 1, 101]);
    // Not again before the set time has passed since the restart.
    down = { since: 20_000, why: "JetStream has not answered" };
    t = 25_000;
    await tick();
    expect(k.restarts()).toBe(1);
    // A server that exits by itself is started again.
    down = undefined;
    started[0]!.die();
    t = 40_000;
    await tick();
    await tick();
    expect([k.restarts(), k.server().pid]).toEqual([2, 102]);
    await k.stop();
    expect(started[1]!.stops).toBe(1);
  });

  it("reads a process's state from /proc", () => {
    expect(["R", "S"]).toContain(procState(process.pid));
    expect(procState(2 ** 22 + 12345)).toBeUndefined();
  });
});
