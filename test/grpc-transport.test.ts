import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as http2 from "node:http2";
import { status } from "@grpc/grpc-js";
import { Registry } from "prom-client";
import { Subject } from "rxjs";
import type { RecoBackend, TrendingSnapshot } from "../connectors/grpc/backend.js";
import { startGrpcServer, type GrpcServer } from "../connectors/grpc/server.js";

/*
 * Malformed HTTP/2 requests, sent by a raw HTTP/2 client, to the methods we
 * serve. grpc-js answered an empty or cut-short body and two messages to a unary method with
 * UNIMPLEMENTED, a malformed grpc-timeout and a body that does not decompress with INTERNAL, and
 * none of them reached grpc_requests_total. Each is the client's error: INVALID_ARGUMENT, counted.
 */

const GET = "/reco.v1.RecommendationService/GetRecommendations";
const TRENDING = "/reco.v1.RecommendationService/StreamTrending";
/** GetRecommendationsRequest { user_id: "u", n: 2 } */
const BODY = Buffer.from([0x0a, 0x01, 0x75, 0x10, 0x02]);
const frame = (body: Buffer, compressed = 0) => {
  const b = Buffer.alloc(5 + body.length);
  b[0] = compressed;
  b.writeUInt32BE(body.length, 1);
  body.copy(b, 5);
  return b;
};

let server: GrpcServer;
const registry = new Registry();

beforeAll(async () => {
  const backend: RecoBackend = {
    isReady: () => true,
    getRecommendations: async (userId) => ({
      userId,
      items: [],
      topCategories: [],
      watermark: null,
      statusMessage: "",
    }),
    trending: () => new Subject<TrendingSnapshot>(),
  };
  server = await startGrpcServer({ port: 0, host: "127.0.0.1", backend, registry });
});
afterAll(() => server?.stop(100));

/** Sends one raw HTTP/2 request; resolves with its grpc-status and grpc-message. */
async function raw(path: string, headers: Record<string, string>, body?: Buffer) {
  const c = http2.connect(`http://127.0.0.1:${server.port}`);
  c.on("error", () => undefined);
  try {
    const req = c.request(
      {
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      },
      { endStream: body === undefined },
    );
    const out: { code?: number; message?: string } = {};
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) out.code = Number(h["grpc-status"]);
      if (h["grpc-message"] !== undefined)
        out.message = decodeURIComponent(String(h["grpc-message"]));
    };
    req.on("response", take);
    req.on("trailers", take);
    req.on("data", () => undefined);
    if (body !== undefined) req.end(body);
    await new Promise((resolve) => req.on("close", resolve));
    return out;
  } finally {
    c.close();
  }
}

async function counted(method: string, code: string): Promise<number> {
  const m = await registry.getSingleMetric("grpc_requests_total")!.get();
  return m.values.find((v) => v.labels.method === method && v.labels.code === code)?.value ?? 0;
}

describe("malformed HTTP/2 requests get the client's-error status, and are counted", () => {
  it.each([
    ["an empty body", GET, {}, undefined, /no request message/],
    ["a frame cut short", GET, {}, frame(BODY).subarray(0, 7), /no request message/],
    [
      "two messages to a unary method",
      GET,
      {},
      Buffer.concat([frame(BODY), frame(BODY)]),
      /more than one/,
    ],
    ["a malformed grpc-timeout", GET, { "grpc-timeout": "soon" }, frame(BODY), /grpc-timeout/],
    [
      "a gzip body that does not decompress",
      GET,
      { "grpc-encoding": "gzip" },
      frame(BODY, 1),
      /decompress/,
    ],
    ["a stream request without a message", TRENDING, {}, undefined, /no request message/],
  ] as const)("answers %s with INVALID_ARGUMENT", async (_, path, headers, body, message) => {
    const method = path.slice(path.lastIndexOf("/") + 1);
    const before = await counted(method, "INVALID_ARGUMENT");
    const ok = await counted(method, "OK");
    const res = await raw(path, headers, body);
    expect(status[res.code!]).toBe("INVALID_ARGUMENT");
    expect(res.message).toMatch(message);
    // Once, and only as what the client got.
    await new Promise((r) => setTimeout(r, 50));
    expect(await counted(method, "INVALID_ARGUMENT")).toBe(before + 1);
    expect(await counted(method, "OK")).toBe(ok);
  });

  it("keeps UNIMPLEMENTED for an unsupported grpc-encoding (the compression spec), now counted", async () => {
    const before = await counted("GetRecommendations", "UNIMPLEMENTED");
    const res = await raw(GET, { "grpc-encoding": "br" }, frame(BODY, 1));
    expect(status[res.code!]).toBe("UNIMPLEMENTED");
    expect(await counted("GetRecommendations", "UNIMPLEMENTED")).toBe(before + 1);
  });

  it("counts a well-formed raw call once, as OK", async () => {
    const before = await counted("GetRecommendations", "OK");
    const res = await raw(GET, {}, frame(BODY));
    expect(res.code).toBe(status.OK);
    expect(await counted("GetRecommendations", "OK")).toBe(before + 1);
  });
});
