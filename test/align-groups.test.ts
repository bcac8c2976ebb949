import { describe, expect, it } from "vitest";
import { createAlignGroups } from "../actors/host/index.js";

/** A member whose handed-on messages are logged, and taken only when the test says. */
function member(
  groups: ReturnType<typeof createAlignGroups>,
  name: string,
  log: string[],
  key = "g",
) {
  const inbox: number[] = [];
  const a = groups.join<number>(key, (upTo) => {
    inbox.push(upTo);
    log.push(`${name}:${upTo}`);
  });
  return {
    inbox,
    receive: (upTo: number) => a.receive(upTo, upTo),
    receiveLive: (upTo: number) => a.receive(upTo, upTo, false),
    /** Takes the oldest handed-on message, as the host does once it has handled it. */
    take: () => {
      inbox.shift();
      a.taken();
    },
    leave: () => a.leave(),
    waiting: () => a.waiting(),
  };
}

describe("input alignment groups", () => {
  it("hands on the lowest position first and holds the member ahead until the floor reaches it", () => {
    const g = createAlignGroups(0);
    const log: string[] = [];
    const a = member(g, "a", log);
    const b = member(g, "b", log);
    a.receive(10);
    b.receive(25);
    a.receive(20);
    b.receive(30);
    a.receive(40);
    // a holds the floor (10): its first goes on; a's 20 and b's 25 and 30 wait for the floor.
    expect(log).toEqual(["a:10"]);
    expect([a.waiting(), b.waiting()]).toEqual([2, 2]);
    a.take(); // floor 20: a's 20 goes
    expect(log).toEqual(["a:10", "a:20"]);
    a.take(); // floor 25 (b): b's 25 goes, then 30 once it is taken; a's 40 after that
    expect(log).toEqual(["a:10", "a:20", "b:25"]);
    b.take();
    expect(log).toEqual(["a:10", "a:20", "b:25", "b:30"]);
    b.take();
    expect(log).toEqual(["a:10", "a:20", "b:25", "b:30", "a:40"]);
  });

  it("lets a member run `ahead` positions past the floor", () => {
    const g = createAlignGroups(15);
    const log: string[] = [];
    const a = member(g, "a", log);
    const b = member(g, "b", log);
    a.receive(10);
    b.receive(25);
    b.receive(26);
    expect(log).toEqual(["a:10", "b:25"]);
    a.take(); // a holds nothing: nobody is held back
    expect(log).toEqual(["a:10", "b:25", "b:26"]);
  });

  it("does not wait for a member with nothing in hand, and a member that leaves holds nobody back", () => {
    const g = createAlignGroups(0);
    const log: string[] = [];
    const a = member(g, "a", log);
    const b = member(g, "b", log);
    const c = member(g, "c", log);
    b.receive(50); // a and c hold nothing: b goes on
    expect(log).toEqual(["b:50"]);
    c.receive(5); // a lower position comes while b's is handed on: c's goes too (floor 5)
    expect(log).toEqual(["b:50", "c:5"]);
    b.receive(60); // waits: the floor is c's 5
    expect(log).toEqual(["b:50", "c:5"]);
    c.leave(); // c stops with its message unhandled: the floor is b's 50, then 60 goes once taken
    b.take();
    expect(log).toEqual(["b:50", "c:5", "b:60"]);
    a.receive(1);
    expect(log.at(-1)).toBe("a:1");
  });

  it("hands a live member's messages on at once, after its earlier ones", () => {
    const g = createAlignGroups(0);
    const log: string[] = [];
    const a = member(g, "a", log);
    const b = member(g, "b", log);
    a.receive(10);
    b.receive(20);
    b.receive(30);
    expect(log).toEqual(["a:10"]);
    // b's input is caught up: its 40 goes, and its waiting 20 and 30 before it.
    b.receiveLive(40);
    expect(log).toEqual(["a:10", "b:20", "b:30", "b:40"]);
    // Behind again: held by a's floor as before.
    b.receive(50);
    a.receive(15);
    b.take();
    b.take();
    b.take();
    expect(log).toEqual(["a:10", "b:20", "b:30", "b:40"]);
    a.take();
    a.take();
    expect(log).toEqual(["a:10", "b:20", "b:30", "b:40", "a:15", "b:50"]);
  });

  it("keeps groups apart", () => {
    const g = createAlignGroups(0);
    const log: string[] = [];
    const a = member(g, "a", log, "history");
    const b = member(g, "b", log, "window");
    a.receive(10);
    b.receive(500);
    expect(log).toEqual(["a:10", "b:500"]);
  });

  it("always moves: every message is handed on once each member takes what it was given", () => {
    // Random arrivals and takes over 4 members; at the end, once everything is taken, every
    // message was handed on exactly once, each member's in its order of arrival, and no message
    // was handed on while another member held a lower position.
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const g = createAlignGroups(0);
    const log: string[] = [];
    const ms = ["a", "b", "c", "d"].map((n) => ({
      n,
      m: member(g, n, log),
      next: 0,
      sent: [] as number[],
    }));
    const held = new Map<string, number[]>(ms.map((x) => [x.n, []]));
    let violations = 0;
    /** Messages handed on since `before`: none while another member held a lower position. */
    const check = (before: number) => {
      for (const line of log.slice(before)) {
        const [who, at] = [line.split(":")[0]!, Number(line.split(":")[1])];
        for (const [other, list] of held)
          if (other !== who && list.length > 0 && Math.min(...list) < at) violations++;
      }
    };
    for (let step = 0; step < 5000; step++) {
      const x = ms[Math.floor(rnd() * ms.length)]!;
      if (rnd() < 0.5 && x.sent.length < 300) {
        x.next += 1 + Math.floor(rnd() * 20);
        x.sent.push(x.next);
        const before = log.length;
        held.get(x.n)!.push(x.next);
        x.m.receive(x.next);
        check(before);
      } else if (x.m.inbox.length > 0) {
        const before = log.length;
        held.get(x.n)!.shift();
        x.m.take();
        check(before);
      }
    }
    // Drain: take whatever is handed on until nothing is.
    for (let round = 0; round < 100_000; round++) {
      const x = ms.find((y) => y.m.inbox.length > 0);
      if (!x) break;
      held.get(x.n)!.shift();
      x.m.take();
    }
    expect(violations).toBe(0);
    for (const x of ms) {
      const got = log.filter((l) => l.startsWith(`${x.n}:`)).map((l) => Number(l.split(":")[1]));
      expect(got).toEqual(x.sent);
    }
  });
});
