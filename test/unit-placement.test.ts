import { describe, expect, it } from "vitest";
import { placeUnits, preferredOwner } from "../connectors/nats/leases.js";
import { createUnits } from "../bin/pipeline/units.js";
import type { Supervisor } from "../runtime/index.js";
import { stageIds } from "./helpers/positions.js";

/**
 * A cluster places units (parse, p0..p7) on workers by their estimated CPU per event. Plain
 * rendezvous hashing placed them by count and at random: with the blend, parse and the
 * collaborative trainer (in p0) weigh two to three partitions each, and two workers w0, w1 held
 * 193 against 124 µs per event (bench step 8: one 85% busy, the other 55%).
 */
function blendUnits(partitions: number, covisit = partitions) {
  const units = createUnits({} as Supervisor, new Map());
  for (const id of stageIds("blend", partitions, true, true, covisit)) {
    const [stage = "", p = "0"] = id.split("/");
    units.register(units.unitOf(stage, Number(p)), id, () => undefined);
  }
  return units;
}

const loads = (placement: Map<string, string>, weights: Map<string, number>) => {
  const out = new Map<string, number>();
  for (const [unit, worker] of placement)
    out.set(worker, (out.get(worker) ?? 0) + weights.get(unit)!);
  return out;
};
const spread = (l: Map<string, number>) => Math.max(...l.values()) / Math.min(...l.values());

describe("placing units on workers", () => {
  const units = blendUnits(8);
  const weights = units.weights();

  it("weighs parse and the trainer's partition as several partitions each", () => {
    const p1 = weights.get("p1")!;
    expect(units.names().sort()).toEqual(["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "parse"]);
    for (let p = 2; p < 8; p++) expect(weights.get(`p${p}`)).toBeCloseTo(p1, 9);
    expect(weights.get("parse")! / p1).toBeGreaterThan(1.5);
    expect(weights.get("p0")! / p1).toBeGreaterThan(3);
  });

  it("spreads the estimated CPU evenly, where rendezvous hashing alone did not", () => {
    const names = units.names();
    for (const workers of [
      ["w0", "w1"],
      ["a", "b"],
      ["worker-1", "worker-2"],
      ["w0", "w1", "w2"],
    ]) {
      const placed = placeUnits(names, workers, weights);
      expect([...placed.keys()].sort()).toEqual([...names].sort());
      expect(new Set(placed.values())).toEqual(new Set(workers));
      // Within one partition's weight of an even share (units are indivisible).
      const share = [...weights.values()].reduce((a, b) => a + b, 0) / workers.length;
      for (const l of loads(placed, weights).values())
        expect(Math.abs(l - share)).toBeLessThanOrEqual(weights.get("p1")!);
    }
    // The placement the cluster used before, on the bench's workers.
    const before = new Map(names.map((u) => [u, preferredOwner(u, ["w0", "w1"])!]));
    expect(spread(loads(before, weights))).toBeGreaterThan(1.4);
    expect(spread(loads(placeUnits(names, ["w0", "w1"], weights), weights))).toBeLessThan(1.2);
  });

  it("spreads a deployment with fewer item partitions of co-visitation evenly too", () => {
    const two = blendUnits(8, 2);
    const w = two.weights();
    // covisit/0 and covisit/1 are in p0 and p1, a quarter of co-visitation's cost each.
    expect(w.get("p1")! / w.get("p2")!).toBeGreaterThan(1.2);
    for (let p = 3; p < 8; p++) expect(w.get(`p${p}`)).toBeCloseTo(w.get("p2")!, 9);
    for (const workers of [
      ["w0", "w1"],
      ["w0", "w1", "w2"],
    ]) {
      const share = [...w.values()].reduce((a, b) => a + b, 0) / workers.length;
      for (const l of loads(placeUnits(two.names(), workers, w), w).values())
        expect(Math.abs(l - share)).toBeLessThanOrEqual(w.get("p1")!);
    }
  });

  it("is the same whichever worker computes it, and keeps units by count without weights", () => {
    const names = units.names();
    const a = placeUnits(names, ["w0", "w1", "w2"], weights);
    const b = placeUnits([...names].reverse(), ["w2", "w0", "w1"], weights);
    expect(b).toEqual(a);
    const counts = new Map<string, number>();
    for (const w of placeUnits(names, ["x", "y"]).values()) counts.set(w, (counts.get(w) ?? 0) + 1);
    expect([...counts.values()].sort()).toEqual([4, 5]);
    expect(placeUnits(names, [])).toEqual(new Map());
  });

  it("moves few units when a third worker joins", () => {
    const names = units.names();
    const two = placeUnits(names, ["w0", "w1"], weights);
    const three = placeUnits(names, ["w0", "w1", "w2"], weights);
    const moved = names.filter((u) => two.get(u) !== three.get(u));
    // The newcomer's share (a third) comes to it; units seldom move between the two others.
    expect(moved.filter((u) => three.get(u) !== "w2").length).toBeLessThanOrEqual(2);
  });
});
