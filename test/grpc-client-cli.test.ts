import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Command } from "commander";
import { BehaviorSubject, NEVER, type Observable } from "rxjs";
import type {
  RecoBackend,
  Recommendations,
  TrendingSnapshot,
  TrendingWindowName,
} from "../connectors/grpc/backend.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/server.js";
import { formatTable, registerQueryCommands, type QueryIo } from "../bin/commands/query.js";

const T0 = Date.UTC(2019, 10, 1, 0, 0, 0);

const recommendations: Recommendations = {
  userId: "u1",
  items: [
    {
      itemId: "1004856",
      score: 12.5,
      rank: 1,
      category: "electronics.smartphone",
      brand: "samsung",
      averagePrice: 130.76,
      source: "PERSONALIZED",
      purchases: 42,
    },
    {
      itemId: "5100816",
      score: 3,
      rank: 2,
      category: "appliances.kitchen",
      brand: "",
      averagePrice: 9.5,
      source: "POPULAR_FALLBACK",
      purchases: 7,
    },
  ],
  topCategories: [
    { category: "electronics.smartphone", interest: 9 },
    { category: "appliances.kitchen", interest: 2 },
  ],
  watermark: T0 + 12 * 3_600_000,
  statusMessage: "",
};

const trending: TrendingSnapshot = {
  window: "1h",
  windowStart: T0,
  windowEnd: T0 + 3_600_000,
  items: [
    { itemId: "a", score: 5, views: 50, clicks: 5 },
    { itemId: "b", score: 4, views: 40, clicks: 4 },
    { itemId: "c", score: 3, views: 30, clicks: 3 },
  ],
  final: false,
  watermark: T0 + 1_800_000,
  weights: { view: 0.1, click: 0.5, cart: 0, purchase: 2 },
};

const backend: RecoBackend = {
  isReady: () => true,
  getRecommendations: async (userId) => ({ ...recommendations, userId }),
  trending: (window: TrendingWindowName): Observable<TrendingSnapshot> =>
    window === "1h" ? new BehaviorSubject(trending) : NEVER,
};

/** Runs `reco <args>` in process and captures what it prints. */
async function reco(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  let exitCode = 0;
  const io: QueryIo = {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    setExitCode: (code) => {
      exitCode = code;
    },
    onInterrupt: () => () => {},
  };
  const program = new Command("reco").exitOverride();
  registerQueryCommands(program, io);
  await program.parseAsync(args, { from: "user" });
  return { out: out.join("\n"), err: err.join("\n"), exitCode };
}

describe("reco recommend and reco trending", () => {
  let server: GrpcServer;
  let address: string;

  beforeAll(async () => {
    server = await startGrpcServer({ port: 0, backend });
    address = `127.0.0.1:${server.port}`;
  });

  afterAll(async () => {
    await server.stop(1000);
  });

  it("prints recommendations as a padded table with top categories and the watermark", async () => {
    const result = await reco("recommend", "u1", "-n", "2", "--address", address);
    expect(result.exitCode).toBe(0);
    expect(result.err).toBe("");
    expect(result.out).toBe(
      [
        "recommendations for u1 (watermark 2019-11-01T12:00:00.000Z)",
        "RANK  ITEM      SCORE  SOURCE            CATEGORY                BRAND    AVG PRICE",
        "   1  1004856  12.500  PERSONALIZED      electronics.smartphone  samsung     130.76",
        "   2  5100816       3  POPULAR_FALLBACK  appliances.kitchen      -             9.50",
        "top categories: electronics.smartphone (9), appliances.kitchen (2)",
      ].join("\n"),
    );
  });

  it("prints the catalogue's titles beside the ids when the answer has any", async () => {
    const titled: RecoBackend = {
      ...backend,
      getRecommendations: async (userId) => ({
        ...recommendations,
        userId,
        items: recommendations.items.map((i, k) => (k === 0 ? { ...i, title: "Galaxy A50" } : i)),
      }),
    };
    const s = await startGrpcServer({ port: 0, backend: titled });
    try {
      const result = await reco("recommend", "u1", "-n", "2", "--address", `127.0.0.1:${s.port}`);
      expect(result.out.split("\n").slice(1, 4)).toEqual([
        "RANK  ITEM     TITLE        SCORE  SOURCE            CATEGORY                BRAND    AVG PRICE",
        "   1  1004856  Galaxy A50  12.500  PERSONALIZED      electronics.smartphone  samsung     130.76",
        "   2  5100816  -                3  POPULAR_FALLBACK  appliances.kitchen      -             9.50",
      ]);
    } finally {
      await s.stop(1000);
    }
  });

  it("prints the gRPC status name and message and exits 1 when the request is invalid", async () => {
    const result = await reco("recommend", "u1", "-n", "500", "--address", address);
    expect(result.err).toBe("error: INVALID_ARGUMENT: n must be between 1 and 100, got 500");
    expect(result.exitCode).toBe(1);
  });

  it("says there is no engine at the address, in one line, and exits 1 when nothing listens there", async () => {
    for (const timeout of [[], ["--timeout", "2000"]]) {
      const result = await reco("recommend", "u1", "--address", "127.0.0.1:1", ...timeout);
      expect(result.err).toBe(
        "error: no engine at 127.0.0.1:1: start it with npm start (or point --address or GRPC_ADDR at one)",
      );
      expect(result.exitCode).toBe(1);
    }
  });

  it("prints the first trending update as a table and exits", async () => {
    const result = await reco("trending", "--window", "1h", "-k", "2", "--address", address);
    expect(result.exitCode).toBe(0);
    expect(result.out).toBe(
      [
        "trending 1h window 2019-11-01T00:00:00.000Z .. 2019-11-01T01:00:00.000Z (open), " +
          "watermark 2019-11-01T00:30:00.000Z",
        // The weights in force; a type of weight 0 counts nothing and is not named.
        "score = view × 0.1 + click × 0.5 + purchase × 2",
        "RANK  ITEM  SCORE  VIEWS  CLICKS  CARTS  PURCHASES",
        "   1  a         5     50       5      0          0",
        "   2  b         4     40       4      0          0",
      ].join("\n"),
    );
  });

  it("says there is nothing yet at once when no event has been counted, well within --timeout", async () => {
    const result = await reco(
      "trending",
      "--window",
      "24h",
      "--timeout",
      "200",
      "--address",
      address,
    );
    expect(result.out.trim()).toBe(
      "trending 24h: no items yet (no event of a type TRENDING_WEIGHTS counts has been seen)",
    );
    expect(result.err).toBe("");
    expect(result.exitCode).toBe(0);
  });

  it("pads columns and right-aligns the numeric ones", () => {
    expect(
      formatTable(
        ["A", "NUM"],
        [
          ["x", "1"],
          ["long", "100"],
        ],
        [false, true],
      ),
    ).toBe(["A     NUM", "x       1", "long  100"].join("\n"));
  });
});
