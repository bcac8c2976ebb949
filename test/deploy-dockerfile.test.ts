import { describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { freePort } from "../connectors/nats/embedded-server.js";
import { read, root, run, unknownEnvs } from "./helpers/deploy.js";

/**
 * deploy/Dockerfile and .dockerignore: Docker does not run here, so the instructions are read and
 * checked against the repository (what is copied exists and is not ignored) and the code
 * (settings, ports), and the HEALTHCHECK command is run against a server that plays /healthz.
 */

/** Dockerfile instructions, continuation lines joined and comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const [op = "", ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(" ") };
    });
}

describe("deploy/Dockerfile", () => {
  const all = instructions(read("deploy/Dockerfile"));
  const stages = all.reduce<{ op: string; args: string }[][]>((acc, i) => {
    if (i.op === "FROM") acc.push([]);
    acc[acc.length - 1]?.push(i);
    return acc;
  }, []);
  const final = stages[stages.length - 1]!;
  const one = (op: string) => final.filter((i) => i.op === op).map((i) => i.args);

  it("builds on node:20-bookworm-slim and installs with npm ci", () => {
    for (const s of stages) expect(s[0]!.args).toMatch(/^node:20-bookworm-slim\b/);
    expect(all.some((i) => i.op === "RUN" && /\bnpm ci\b/.test(i.args))).toBe(true);
  });

  it("copies only files that exist and that .dockerignore lets through", () => {
    const ignored = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    for (const i of all.filter((x) => x.op === "COPY" && !x.args.includes("--from"))) {
      const parts = i.args.split(/\s+/).filter((p) => !p.startsWith("--"));
      for (const src of parts.slice(0, -1)) {
        if (src === ".") continue;
        expect(existsSync(join(root, src)), `${src} exists`).toBe(true);
        expect(ignored, `${src} is not ignored`).not.toContain(src);
      }
    }
    for (const must of ["node_modules", "data", ".git", "proto/gen", ".scratch", "coverage"])
      expect(ignored).toContain(must);
  });

  it("runs as a non-root user", () => {
    const user = one("USER").at(-1);
    expect(user).toBeDefined();
    expect(user!.split(":")[0]).not.toMatch(/^(root|0)$/);
  });

  it("exposes gRPC 50051 and metrics 9464, and sets only known settings", () => {
    expect(one("EXPOSE").join(" ").split(/\s+/)).toEqual(expect.arrayContaining(["50051", "9464"]));
    const env = one("ENV")
      .join(" ")
      .split(/\s+/)
      .map((kv) => kv.split("=")[0]!)
      .filter((k) => k !== "NODE_ENV");
    expect(env).toEqual(expect.arrayContaining(["DATA_DIR", "GRPC_PORT", "METRICS_PORT"]));
    expect(unknownEnvs(env)).toEqual([]);
  });

  it('has ENTRYPOINT ["node","bin/reco.mjs"] and CMD ["start"]', () => {
    expect(JSON.parse(one("ENTRYPOINT").at(-1)!)).toEqual(["node", "bin/reco.mjs"]);
    expect(JSON.parse(one("CMD").at(-1)!)).toEqual(["start"]);
    expect(existsSync(join(root, "bin/reco.mjs"))).toBe(true);
  });

  it("HEALTHCHECK asks /healthz on METRICS_PORT: exit 0 on 200, 1 on 503 or no answer", async () => {
    const hc = one("HEALTHCHECK").at(-1)!;
    const exec = JSON.parse(hc.slice(hc.indexOf("CMD") + 3).trim()) as string[];
    expect(exec[0]).toBe("node");
    let status = 200;
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? "");
      res.writeHead(status).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    // Asynchronously: the server answering it runs in this process.
    const check = (p: number) =>
      run(process.execPath, exec.slice(1), {
        env: { ...process.env, METRICS_PORT: String(p) },
        timeout: 10_000,
      }).then(
        () => 0,
        (err: { code?: number }) => err.code,
      );
    try {
      expect(await check(port)).toBe(0);
      status = 503;
      expect(await check(port)).toBe(1);
      expect(paths).toEqual(["/healthz", "/healthz"]);
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(await check(await freePort())).toBe(1);
  });
});
