import type { Registry } from "prom-client";
import type { RecoBackend } from "../../actors/contract/index.js";

export interface GrpcServerOptions {
  /** 0 picks a free port (read it back from `GrpcServer.port`). */
  port: number;
  /** Interface to bind; default `127.0.0.1`. `0.0.0.0` serves every interface. */
  host?: string;
  backend: RecoBackend;
  /**
   * If given, the server registers `grpc_requests_total{method,code}`,
   * `grpc_request_duration_seconds{method}` (for streams: the stream's lifetime),
   * `grpc_trending_subscribers` and `grpc_trending_dropped_updates_total` in it.
   */
  registry?: Registry;
  /** PEM files; insecure (plaintext) when absent. */
  tls?: { certFile: string; keyFile: string };
  /**
   * `grpc.max_receive_message_length`: a larger request is refused by grpc-js with
   * RESOURCE_EXHAUSTED before it is decoded. Default 64 KiB (our requests are a few hundred bytes;
   * GRPC_MAX_MESSAGE_BYTES).
   */
  maxMessageBytes?: number;
  /** Open StreamTrending calls at most; one more gets RESOURCE_EXHAUSTED. Default 10,000. */
  maxTrendingStreams?: number;
  /**
   * A StreamTrending call that was sent nothing for this long gets a heartbeat (the newest list
   * again, `heartbeat` set). Default 10 s.
   */
  trendingHeartbeatMs?: number;
  /**
   * Keep the finals of past trending windows from the start (for GetTrending's `at`): the server
   * then holds a subscription per window kind. Default false: kept from the first GetTrending
   * call on. The app sets it.
   */
  keepTrendingFinals?: boolean;
  logger?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}
