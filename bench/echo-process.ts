import { fromBinary } from "@bufbuild/protobuf";
import { GetRecommendationsResponseSchema } from "../proto/gen/reco/v1/reco_pb.js";
import { startEchoServer } from "./echo.js";

/**
 * The echo server (bench/echo.ts) in a process of its own: step 4b's ceiling. It shares nothing
 * with the app but the machine, so what it serves while the app ingests is the most any serving
 * layout could serve on this machine under that ingest (bench/README.md, step 4b).
 *
 *   spawnTs(repoPath("echo-process.ts"), [base64 of a GetRecommendationsResponse])
 *
 * Sends `{ port }` over the IPC channel once it listens; stops on SIGTERM or when the channel
 * closes (its parent gone).
 */
const response = fromBinary(
  GetRecommendationsResponseSchema,
  Buffer.from(process.argv[2] ?? "", "base64"),
);
const echo = await startEchoServer(response);
process.send?.({ port: echo.port });
const stop = () => void echo.stop().then(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("disconnect", stop);
