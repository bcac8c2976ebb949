import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Metadata,
  credentials,
  loadPackageDefinition,
  makeGenericClientConstructor,
  type Client,
  type ClientDuplexStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { service as healthService } from "grpc-health-check";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { GrpcServer } from "../connectors/grpc/server.js";
import { resetFake, startFakeServer, type FakeBackend } from "./helpers/grpc-server.js";

/**
 * What the server tells tools and load balancers about itself: gRPC health (per service, and
 * NOT_SERVING when told to) and server reflection in both versions clients use, with the .proto
 * files a client needs to call it without a copy of reco.proto.
 */

describe("gRPC server", () => {
  let fake: FakeBackend;
  let server: GrpcServer;
  let address: string;
  let stop: () => Promise<void>;
  const logger = { info: vi.fn(), warn: vi.fn() };

  beforeAll(async () => {
    ({ fake, server, address, stop } = await startFakeServer(logger));
  });

  afterAll(async () => {
    await stop();
  });

  beforeEach(() => resetFake(fake, logger));

  describe("health and reflection", () => {
    const HealthClient = makeGenericClientConstructor(healthService, "grpc.health.v1.Health");

    function checkHealth(serviceName: string): Promise<string> {
      const health = new HealthClient(address, credentials.createInsecure());
      return new Promise<string>((resolve, reject) => {
        health.Check(
          { service: serviceName },
          (err: ServiceError | null, res?: { status: string }) =>
            err || !res ? reject(err) : resolve(res.status),
        );
      }).finally(() => health.close());
    }

    it("reports SERVING for the server and the service, NOT_SERVING after setServing(false)", async () => {
      expect(await checkHealth("")).toBe("SERVING");
      expect(await checkHealth("reco.v1.RecommendationService")).toBe("SERVING");
      server.setServing(false);
      try {
        expect(await checkHealth("reco.v1.RecommendationService")).toBe("NOT_SERVING");
      } finally {
        server.setServing(true);
      }
    });

    type ReflectionResponse = {
      listServicesResponse?: { service: { name: string }[] };
      fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
      errorResponse?: { errorCode: number; errorMessage: string };
    };

    /** One request/response exchange with the reflection service of `version`. */
    async function reflect(
      version: "v1" | "v1alpha",
      request: Record<string, string>,
    ): Promise<ReflectionResponse> {
      const root = dirname(createRequire(import.meta.url).resolve("@grpc/reflection/package.json"));
      const definition = loadSync(
        join(root, `build/proto/grpc/reflection/${version}/reflection.proto`),
      );
      const grpcPackage = loadPackageDefinition(definition) as unknown as {
        grpc: {
          reflection: Record<string, { ServerReflection: new (...args: unknown[]) => Client }>;
        };
      };
      const Reflection = grpcPackage.grpc.reflection[version]?.ServerReflection;
      if (!Reflection) throw new Error(`no ServerReflection in ${version}`);
      const reflection = new Reflection(address, credentials.createInsecure()) as Client & {
        ServerReflectionInfo(metadata: Metadata): ClientDuplexStream<object, ReflectionResponse>;
      };
      try {
        const call = reflection.ServerReflectionInfo(new Metadata());
        const response = new Promise<ReflectionResponse>((resolve, reject) => {
          call.once("data", resolve);
          call.once("error", reject);
        });
        call.write(request);
        call.end();
        return await response;
      } finally {
        reflection.close();
      }
    }

    it.each(["v1", "v1alpha"] as const)(
      "lists reco.v1.RecommendationService and serves its file over reflection %s",
      async (version) => {
        const list = await reflect(version, { listServices: "*" });
        const names = list.listServicesResponse?.service.map((s) => s.name) ?? [];
        expect(names).toContain("reco.v1.RecommendationService");
        expect(names).toContain("grpc.health.v1.Health");

        const file = await reflect(version, {
          fileContainingSymbol: "reco.v1.RecommendationService",
        });
        const protos = (file.fileDescriptorResponse?.fileDescriptorProto ?? []).map((bytes) =>
          fromBinary(FileDescriptorProtoSchema, bytes),
        );
        const reco = protos.find((p) => p.name === "reco/v1/reco.proto");
        expect(reco?.service.map((s) => s.name)).toEqual(["RecommendationService"]);
        expect(reco?.service[0]?.method.map((m) => m.name)).toEqual([
          "GetRecommendations",
          "StreamTrending",
          "GetSimilarItems",
          "GetTrending",
        ]);
        // Its import comes along, so a client can resolve google.protobuf.Timestamp.
        expect(protos.map((p) => p.name)).toContain("google/protobuf/timestamp.proto");
      },
    );
  });
});
