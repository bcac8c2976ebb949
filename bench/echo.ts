import { Server, ServerCredentials, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { recoServiceDefinition } from "../connectors/grpc/server.js";
import type { GetRecommendationsResponse } from "../proto/gen/reco/v1/reco_pb.js";

export interface EchoServer {
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The serving baseline: a bare grpc-js server with the same service definition (same method
 * path, same protobuf-es (de)serialisation) whose GetRecommendations answers a prebuilt
 * response at once: no backend, no metrics, no validation.
 */
export async function startEchoServer(response: GetRecommendationsResponse): Promise<EchoServer> {
  const server = new Server({ "grpc.max_receive_message_length": 1024 * 1024 });
  const impl: UntypedServiceImplementation = {
    GetRecommendations: (
      _call: unknown,
      callback: (err: null, value: GetRecommendationsResponse) => void,
    ) => callback(null, response),
    StreamTrending: (call: { end(): void }) => call.end(),
  };
  server.addService(recoServiceDefinition, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}
