import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { recoServiceDefinition } from "../connectors/grpc/server.js";
import {
  GetRecommendationsRequestSchema,
  GetRecommendationsResponseSchema,
  type GetRecommendationsRequest,
} from "../proto/gen/reco/v1/reco_pb.js";
import { grpcFrame } from "../bench/h2load.js";
import { runGrpcLoad } from "../bench/grpc-load.js";

// The step-4 generator's raw HTTP/2 client reads answers from frame headers only: a real grpc-js
// server must see every call (each user's own body) and every error must count as one.
describe("bench grpc-load", () => {
  let server: Server;
  let port = 0;
  let dir = "";
  const asked: string[] = [];
  const users = Array.from({ length: 50 }, (_, i) => (i % 10 === 9 ? `bad-${i}` : `u${i}`));

  beforeAll(async () => {
    server = new Server();
    const impl: UntypedServiceImplementation = {
      GetRecommendations: (
        call: ServerUnaryCall<GetRecommendationsRequest, unknown>,
        cb: sendUnaryData<unknown>,
      ) => {
        asked.push(call.request.userId);
        if (call.request.userId.startsWith("bad"))
          cb({ code: status.INVALID_ARGUMENT, details: "bad user" });
        else cb(null, create(GetRecommendationsResponseSchema, {}));
      },
      StreamTrending: (call: { end(): void }) => call.end(),
    };
    server.addService(recoServiceDefinition, impl);
    port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    dir = await mkdtemp(join(tmpdir(), "reco-grpc-load-"));
    const frames = users.map((u) =>
      grpcFrame(
        toBinary(
          GetRecommendationsRequestSchema,
          create(GetRecommendationsRequestSchema, { userId: u, n: 10 }),
        ),
      ),
    );
    await writeFile(join(dir, "bodies.bin"), Buffer.concat(frames));
  });
  afterAll(async () => {
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });

  for (const client of ["raw", "node"] as const)
    it(`${client}: asks every body in turn and counts the errors`, async () => {
      asked.length = 0;
      const r = await runGrpcLoad({
        url: `http://127.0.0.1:${port}/reco.v1.RecommendationService/GetRecommendations`,
        bodiesFile: join(dir, "bodies.bin"),
        streams: 4,
        requests: 2000,
        client,
      });
      expect(r.requests).toBe(2000);
      expect(r.ok).toBe(1800); // 1 user in 10 is refused
      const errCode = client === "raw" ? -2 : status.INVALID_ARGUMENT;
      expect(r.codes).toEqual({ [errCode]: 200 });
      expect(asked.length).toBe(2000);
      expect(new Set(asked)).toEqual(new Set(users));
      expect(asked.filter((u) => u === "u0").length).toBe(40);
      expect(r.p99Ms).toBeGreaterThan(0);
    });

  it("raw: runs for a duration (step 4b), every call it counts answered", async () => {
    asked.length = 0;
    const r = await runGrpcLoad({
      url: `http://127.0.0.1:${port}/reco.v1.RecommendationService/GetRecommendations`,
      bodiesFile: join(dir, "bodies.bin"),
      streams: 64,
      durationS: 0.3,
    });
    expect(r.requests).toBeGreaterThan(100);
    expect(r.ok + (r.codes[-2] ?? 0)).toBe(r.requests);
    expect(r.codes[-1]).toBeUndefined();
    // Every call started was finished before it returned: the server saw exactly these.
    expect(asked.length).toBe(r.requests);
  });

  it("raw: a closed server is a transport error, not an answer", async () => {
    const s = new Server();
    s.addService(recoServiceDefinition, {
      GetRecommendations: () => undefined, // never answers
      StreamTrending: (call: { end(): void }) => call.end(),
    });
    const p = await new Promise<number>((resolve, reject) =>
      s.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, v) =>
        err ? reject(err) : resolve(v),
      ),
    );
    setTimeout(() => s.forceShutdown(), 300);
    const r = await runGrpcLoad({
      url: `http://127.0.0.1:${p}/reco.v1.RecommendationService/GetRecommendations`,
      bodiesFile: join(dir, "bodies.bin"),
      streams: 4,
      requests: 10,
    });
    expect(r.ok).toBe(0);
    expect(r.codes[-1]).toBeGreaterThan(0);
  });
});
