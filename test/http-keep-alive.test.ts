import { request, Agent } from "node:http";
import { describe, expect, it } from "vitest";
import { Registry } from "prom-client";
import { startHttpServer, type HttpServer } from "../connectors/http/server.js";
import { sleep, useCleanups } from "./helpers/harness.js";

/** GET over `agent`; resolves with the local port of the socket that carried it. */
const get = (agent: Agent, port: number, path: string) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(req.socket!.localPort!));
    });
    req.on("error", reject);
    req.end();
  });

describe("HTTP keep-alive of the metrics server", () => {
  const cleanups = useCleanups();

  it("keeps an idle client connection open past node's 5 s default, so a reuse cannot race its close", async () => {
    const server: HttpServer = await startHttpServer({
      port: 0,
      registry: new Registry(),
      health: () => ({ ok: true, detail: {} }),
    });
    cleanups.add(() => server.stop());
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.add(() => agent.destroy());
    let closed = false;
    const first = await get(agent, server.port, "/livez");
    const socket = Object.values(agent.freeSockets)[0]?.[0];
    socket?.once("close", () => void (closed = true));
    // Node closes idle connections after 5 s by default (server.keepAliveTimeout; ~6 s measured).
    await sleep(7_000);
    expect(closed).toBe(false);
    expect(await get(agent, server.port, "/metrics")).toBe(first);
  }, 15_000);
});
