import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";

/**
 * Grpc-health-check parsed its .proto with protobufjs when imported, and
 * @grpc/reflection loaded two more, ~60-110 ms of CPU before a restarted process could load a
 * snapshot. Health and reflection are now registered with their libraries loaded at their first
 * call (connectors/grpc/lazy-services.ts). Checked in a fresh node process (the module cache is
 * per process): nothing of them is loaded by starting the server; then health Check and Watch
 * work, status changes included (reflection: test/grpc-server-health-reflection.test.ts).
 */
const script = `
  import { createRequire } from "node:module";
  import { makeGenericClientConstructor, credentials } from "@grpc/grpc-js";
  import { startGrpcServer } from "./connectors/grpc/server.ts";
  const cache = createRequire(import.meta.url).cache;
  const libs = () =>
    Object.keys(cache).filter((p) => /node_modules[\\\\/](protobufjs|grpc-health-check|@grpc[\\\\/](reflection|proto-loader))[\\\\/]/.test(p)).length;
  const server = await startGrpcServer({ port: 0, backend: { isReady: () => true } });
  const atStart = libs();
  const { service } = createRequire(import.meta.url)("grpc-health-check");
  const Health = makeGenericClientConstructor(service, "grpc.health.v1.Health");
  const client = new Health("127.0.0.1:" + server.port, credentials.createInsecure());
  const check = await new Promise((done, fail) =>
    client.Check({ service: "" }, (err, res) => (err ? fail(err) : done(res.status))));
  const watched = [];
  const call = client.Watch({ service: "reco.v1.RecommendationService" });
  await new Promise((done) => call.on("data", (m) => {
    watched.push(m.status);
    if (watched.length === 1) server.setServing(false);
    else done();
  }));
  call.on("error", () => undefined); // CANCELLED, below
  call.cancel();
  client.close();
  await server.stop(100);
  process.stdout.write(JSON.stringify({ atStart, check, watched }));
`;

describe("gRPC health and reflection loaded lazily", () => {
  it("loads neither library (nor protobufjs) to start a server, and answers health after", () => {
    const out = execFileSync(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: new URL("..", import.meta.url), encoding: "utf8", timeout: 30_000 },
    );
    expect(JSON.parse(out)).toEqual({
      atStart: 0,
      check: "SERVING",
      watched: ["SERVING", "NOT_SERVING"],
    });
  }, 40_000);
});
