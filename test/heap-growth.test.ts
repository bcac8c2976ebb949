import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../bin/config.js";
import { growingPercent, MAX_GROWING_PERCENT } from "../bin/heap-growth.js";

/**
 * V8 let the app's heap grow to ~4x its live data between full GCs (bench
 * step 7: 622 MiB held for ~120 MB live at 300k users), RSS that counted as state.
 * HEAP_GROWING_PERCENT (default 100) fixes the growth once the app has started. Checked in a fresh node process: the same
 * churn over a fixed live set holds less heap with the limit than with V8's own factor.
 * HEAP_GROWING_MIN_MB (default 32) lets a small heap grow by that much all the same: the same
 * churn makes fewer full GCs.
 */

/**
 * After replacing the values of 300k keys 10 times with limitHeapGrowth(percent, minMiB): heap
 * held (MB), full GCs during the churn, and the percent in force at the end.
 */
function churn(percent: number, minMiB = 0): { held: number; majors: number; percent: number } {
  const script = `
    import { getHeapStatistics } from "node:v8";
    import { constants, PerformanceObserver } from "node:perf_hooks";
    import { limitHeapGrowth } from "./bin/heap-growth.ts";
    const growth = limitHeapGrowth(${percent}, ${minMiB});
    let majors = 0;
    const gc = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
    });
    gc.observe({ entryTypes: ["gc"] });
    const live = new Map();
    for (let i = 0; i < 3_000_000; i++) live.set(i % 300_000, { a: i, b: "x" + i, c: [i, i + 1] });
    // The observers hear of the last collections on the next turn.
    setTimeout(() => {
      gc.disconnect();
      growth.stop();
      process.stdout.write(JSON.stringify({
        held: getHeapStatistics().total_heap_size / 1e6,
        majors,
        percent: growth.percent(),
      }));
    }, 50);
  `;
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    {
      cwd: new URL("..", import.meta.url),
      encoding: "utf8",
    },
  );
  return JSON.parse(out) as { held: number; majors: number; percent: number };
}

describe("heap growth", () => {
  it("is limited to 100% by default, at least 32 MiB, 0 leaving V8's own", () => {
    expect(loadConfig({}, {}).heapGrowingPercent).toBe(100);
    expect(loadConfig({}, {}).heapGrowingMinMb).toBe(32);
    expect(loadConfig({ HEAP_GROWING_PERCENT: "0" }, {}).heapGrowingPercent).toBe(0);
    expect(loadConfig({ HEAP_GROWING_MIN_MB: "0" }, {}).heapGrowingMinMb).toBe(0);
  });

  it("grows by the percent of a large heap, by the least MiB of a small one, at most 4x", () => {
    const MiB = 1024 * 1024;
    expect(growingPercent(25, 64 * MiB, 1024 * MiB)).toBe(25);
    expect(growingPercent(25, 64 * MiB, 256 * MiB)).toBe(25);
    expect(growingPercent(25, 64 * MiB, 200 * MiB)).toBe(32);
    expect(growingPercent(25, 64 * MiB, 64 * MiB)).toBe(100);
    expect(growingPercent(25, 64 * MiB, 8 * MiB)).toBe(MAX_GROWING_PERCENT);
    expect(growingPercent(25, 0, 8 * MiB)).toBe(25);
    expect(growingPercent(40, 64 * MiB, 0)).toBe(MAX_GROWING_PERCENT);
  });

  it("holds less heap for the same live data and churn than V8's own growth", () => {
    const own = churn(0);
    const limited = churn(25);
    expect(limited.held).toBeLessThan(own.held * 0.75);
    expect(limited.percent).toBe(25);
    expect(own.percent).toBe(0);
  }, 60_000);

  it("lets a small heap grow by the least MiB: fewer full GCs for the same churn", () => {
    const percentOnly = churn(25);
    const withLeast = churn(25, 64);
    expect(withLeast.majors).toBeLessThan(percentOnly.majors);
    expect(withLeast.percent).toBeGreaterThan(25);
    expect(withLeast.held).toBeGreaterThan(percentOnly.held);
  }, 60_000);
});

/**
 * A burst of work (a live map whose values are replaced many times, then objects that outlive a
 * few scavenges and are dropped), then 3 s with the event loop idle but for a small timer, with
 * collectWhenQuiet(quietMs, 8 MiB) checking every 200 ms: heap held (MB) before and after the
 * quiet spell, heap used at the end, and the GCs it ran.
 */
function quiet(
  quietMs: number,
  /** A short task (~150 ms of work) 1.6 s into the quiet spell, which then lasts 3.6 s. */
  blip = false,
): { before: number; after: number; used: number; runs: number } {
  const script = `
    import { getHeapStatistics } from "node:v8";
    import { collectWhenQuiet } from "./bin/heap-growth.ts";
    const quietGc = collectWhenQuiet(${quietMs}, 8, { checkMs: 200 });
    const live = new Map();
    // The burst: about 2 s of the loop busy, in tasks of ~50 ms (as stages run batches).
    let round = 0;
    const burst = () => {
      for (let i = 0; i < 200_000; i++) live.set((i * 7919 + round) % 150_000, { a: i, b: "x" + i + round, c: [i, round] });
      if (++round < 40) setTimeout(burst, 1);
      else leftovers();
    };
    // What a burst leaves in the old generation: objects that lived through a few scavenges
    // (batches, snapshot buffers), then dropped.
    let junk = [];
    const leftovers = () => {
      for (let i = 0; i < 1_500_000; i++) junk.push({ i, s: "y" + i });
      setTimeout(() => {
        junk = null;
        setTimeout(measure, 50);
      }, 20);
    };
    const held = () => getHeapStatistics().total_heap_size / 1e6;
    let before = 0;
    const measure = () => {
      before = held();
      // Quiet: a timer that allocates a little, as an idle app's do.
      const tick = setInterval(() => JSON.stringify({ t: Date.now() }), 50);
      if (${blip})
        setTimeout(() => {
          const end = performance.now() + 150;
          let n = 0;
          while (performance.now() < end) n += JSON.stringify({ n }).length;
        }, 1600);
      setTimeout(() => {
        clearInterval(tick);
        quietGc.stop();
        process.stdout.write(JSON.stringify({
          before,
          after: held(),
          used: getHeapStatistics().used_heap_size / 1e6,
          runs: quietGc.collections(),
          size: live.size,
        }));
      }, ${blip ? 3600 : 3000});
    };
    burst();
  `;
  const out = execFileSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    { cwd: new URL("..", import.meta.url), encoding: "utf8" },
  );
  return JSON.parse(out) as { before: number; after: number; used: number; runs: number };
}

describe("a full GC once quiet after work", () => {
  it("is on by default after 2 s, 0 turning it off", () => {
    expect(loadConfig({}, {}).heapQuietGcMs).toBe(2000);
    expect(loadConfig({ HEAP_QUIET_GC_MS: "0" }, {}).heapQuietGcMs).toBe(0);
  });

  it("gives back the heap a burst left behind, once, and nothing without it", () => {
    const off = quiet(0);
    const on = quiet(1000);
    expect(off.runs).toBe(0);
    expect(on.runs).toBe(1);
    // Collected and compacted, the heap holds little more than its live data; left alone, what
    // the burst grew it to (less whatever V8's own marking, under way when the burst ended,
    // finished during the quiet spell: on a loaded machine about a third of it).
    expect(on.after).toBeLessThan(on.before * 0.6);
    expect(on.after).toBeLessThan(off.after * 0.6);
  }, 60_000);

  it("does not collect again after a short task when the heap has not grown since", () => {
    // A request or a timer's work after the quiet GC ends the quiet spell; the next one finds
    // nothing to give back (the heap was compacted and has not grown), and a full GC of the
    // whole heap would only pause the process (558 ms at 1M users).
    const on = quiet(1000, true);
    expect(on.runs).toBe(1);
    expect(on.after).toBeLessThan(on.before * 0.6);
  }, 60_000);
});
