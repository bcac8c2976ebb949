import { describe, expect, it } from "vitest";
import { createLoadTurns } from "../bin/pipeline/load-turns.js";

/**
 * Loads at process start run one at a time; the next one's LevelDB read used to start only once
 * the load before it had ended, so the event loop waited for every instance's bytes in turn.
 */
describe("load turns", () => {
  it("run loads one at a time in order, the next one's read started while the one before runs", async () => {
    const turns = createLoadTurns();
    const log: string[] = [];
    const gates: (() => void)[] = [];
    const load = (name: string) => () =>
      new Promise<string>((resolve) => {
        log.push(`start ${name}`);
        gates.push(() => {
          log.push(`end ${name}`);
          resolve(name);
        });
      });
    const done = ["a", "b", "c"].map((name) =>
      turns.run(load(name), () => log.push(`read ${name}`)),
    );
    await new Promise((r) => setImmediate(r));
    // a runs; b reads ahead as a begins; c waits without reading (one read ahead at a time).
    expect(log).toEqual(["read b", "start a"]);
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
    expect(log).toEqual(["read b", "start a", "end a", "read c", "start b"]);
    gates.shift()!();
    await new Promise((r) => setImmediate(r));
    gates.shift()!();
    expect(await Promise.all(done)).toEqual(["a", "b", "c"]);
    expect(log.slice(5)).toEqual(["end b", "start c", "end c"]);
  });

  it("reads a load asked for while another runs at once, and goes on after a failed load", async () => {
    const turns = createLoadTurns();
    const log: string[] = [];
    let release = () => undefined as void;
    const first = turns.run(
      () => new Promise<void>((_, reject) => (release = () => reject(new Error("corrupt")))),
    );
    await new Promise((r) => setImmediate(r));
    const second = turns.run(
      async () => void log.push("load 2"),
      () => log.push("read 2"),
    );
    expect(log).toEqual(["read 2"]);
    release();
    await expect(first).rejects.toThrow("corrupt");
    await second;
    expect(log).toEqual(["read 2", "load 2"]);
  });
});
