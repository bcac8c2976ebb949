import { describe, expect, it } from "vitest";
import { createGatewayBackend } from "../bin/pipeline/gateway.js";
import { createPopularityTable } from "../actors/stages/index.js";
import { createProfileReplica, createTrendingHub } from "../actors/serving/index.js";
import { BackendUnavailableError } from "../connectors/grpc/backend.js";

const NOW = Date.parse("2026-11-20T12:00:00Z");

function setUp() {
  let clock = NOW;
  const table = createPopularityTable();
  for (const [item, category, purchases] of [
    ["p1", "books", 5],
    ["p2", "books", 3],
    ["p3", "toys", 9],
  ] as const)
    table.apply({ item, category, brand: "b", purchases, avgPrice: 10, wm: NOW });
  (table as { initialised: boolean }).initialised = true;
  const replica = createProfileReplica(() => clock);
  replica.apply({ u: "u1", top: [["books", 4]], pur: [], wm: NOW });
  const backend = createGatewayBackend({
    table,
    hub: createTrendingHub({
      partitions: 1,
      triggerMs: 1000,
      oneHourOutOfOrdernessMs: 0,
      oneDayOutOfOrdernessMs: 0,
    }),
    replica,
    userOutOfOrdernessMs: 600_000,
    interestHorizonMs: 24 * 3_600_000,
    fallbackSize: 10,
    maxStalenessMs: 5_000,
  });
  return { backend, replica, tick: (ms: number) => (clock += ms) };
}

describe("the gateway backend answers in place", () => {
  it("gives from recommendNow what getRecommendations gives, staleness included", async () => {
    const { backend, replica, tick } = setUp();
    replica.noteCaughtUp(0);
    replica.noteCaughtUp(3); // behind again: staleness counts from the last catch-up
    tick(1_200);
    const now = backend.recommendNow?.("u1", 3);
    expect(now?.items.map((i) => [i.itemId, i.source])).toEqual([
      ["p1", "PERSONALIZED"],
      ["p2", "PERSONALIZED"],
      ["p3", "POPULAR_FALLBACK"],
    ]);
    expect(now?.stalenessMs).toBe(1_200);
    expect(await backend.getRecommendations("u1", 3, new AbortController().signal)).toEqual(now);
  });

  it("throws UNAVAILABLE's error before the replica caught up or beyond maxStalenessMs", () => {
    const { backend, replica, tick } = setUp();
    expect(() => backend.recommendNow?.("u1", 3)).toThrow(BackendUnavailableError);
    replica.noteCaughtUp(0);
    expect(backend.recommendNow?.("u1", 3)?.stalenessMs).toBe(0);
    replica.noteCaughtUp(7);
    tick(5_001);
    expect(() => backend.recommendNow?.("u1", 3)).toThrow(/5001 ms behind \(limit 5000 ms\)/);
  });
});
