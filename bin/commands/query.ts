import { InvalidArgumentError as UsageError, Option, type Command } from "commander";
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import {
  createRecoClient,
  type RecoClient,
  type RecoClientOptions,
} from "../../connectors/grpc/client.js";
import { statusName } from "../../connectors/grpc/errors.js";
import { status } from "@grpc/grpc-js";
import { findEngine } from "../run-file.js";
import type { TrendingWindowName } from "../../actors/contract/index.js";
import {
  Source,
  TrendingWindow,
  type GetRecommendationsResponse,
  type TrendingUpdate,
} from "../../proto/gen/reco/v1/reco_pb.js";

/** Where the commands write; tests pass their own. */
export interface QueryIo {
  out(line: string): void;
  err(line: string): void;
  setExitCode(code: number): void;
  /** Registers a Ctrl-C handler for `--follow`; returns the unregister function. */
  onInterrupt(handler: () => void): () => void;
}

const processIo: QueryIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  setExitCode: (code) => {
    process.exitCode = code;
  },
  onInterrupt(handler) {
    process.once("SIGINT", handler);
    return () => process.removeListener("SIGINT", handler);
  },
};

interface ConnectionFlags {
  address?: string;
  tls?: boolean;
  caFile?: string;
}

/** Adds `reco recommend` and `reco trending`, clients of the gRPC façade (DESIGN.md §5). */
export function registerQueryCommands(program: Command, io: QueryIo = processIo): void {
  const addressHelp = "gRPC address host:port (default: $GRPC_ADDR or 127.0.0.1:$GRPC_PORT|50051)";

  program
    .command("recommend")
    .description("print recommendations for a user")
    .argument("<user>", "user id")
    .option("-n, --n <n>", "how many items (1..100)", parseInteger, 10)
    .option("--address <host:port>", addressHelp)
    .option("--tls", "connect with TLS (system roots)")
    .option("--ca-file <pem>", "connect with TLS trusting this CA bundle")
    .option("--timeout <ms>", "deadline of the call in milliseconds", parseInteger, 5000)
    .action(async (user: string, flags: ConnectionFlags & { n: number; timeout: number }) => {
      await withClient(flags, io, async (client) => {
        const response = await client.getRecommendations(user, flags.n, {
          deadlineMs: flags.timeout,
        });
        printRecommendations(response, io);
      });
    });

  program
    .command("trending")
    .description("print the trending items of the newest window")
    .addOption(
      new Option("--window <window>", "window length").choices(["1h", "24h"]).default("1h"),
    )
    .option("-k, --k <k>", "how many items (1..100)", parseInteger, 10)
    .option("--follow", "print every update until Ctrl-C")
    .option("--address <host:port>", addressHelp)
    .option("--tls", "connect with TLS (system roots)")
    .option("--ca-file <pem>", "connect with TLS trusting this CA bundle")
    .option(
      "--timeout <ms>",
      "without --follow: how long to wait for the first update",
      parseInteger,
      10_000,
    )
    .action(
      async (
        flags: ConnectionFlags & {
          window: TrendingWindowName;
          k: number;
          follow?: boolean;
          timeout: number;
        },
      ) => {
        await withClient(flags, io, async (client) => {
          if (!flags.follow) {
            // The newest list now (GetTrending), without waiting for the stream's next update.
            const now = await client.getTrending(flags.window, flags.k).catch((err: unknown) => {
              const e = err as { code?: number; details?: string };
              if (e.code === status.UNAVAILABLE && e.details === "no trending data yet")
                return null;
              return undefined; // starting, or an older server: wait for the stream below
            });
            if (now === null) {
              io.out(
                `trending ${flags.window}: no items yet (no event of a type TRENDING_WEIGHTS counts has been seen)`,
              );
              return;
            }
            if (now) {
              printTrending(now, io);
              return;
            }
          }
          const stream = client.streamTrending(flags.window, flags.k);
          const unregister = io.onInterrupt(() => stream.cancel());
          let timer: NodeJS.Timeout | undefined;
          let timedOut = false;
          if (!flags.follow) {
            timer = setTimeout(() => {
              timedOut = true;
              stream.cancel();
            }, flags.timeout);
          }
          try {
            let first = true;
            for await (const update of stream) {
              // A heartbeat repeats the newest list: the stream is alive, nothing changed.
              if (update.heartbeat) continue;
              if (!first) io.out("");
              first = false;
              printTrending(update, io);
              if (!flags.follow) break;
            }
            if (timedOut) {
              io.err(`error: DEADLINE_EXCEEDED: no trending update within ${flags.timeout} ms`);
              io.setExitCode(1);
            }
          } finally {
            clearTimeout(timer);
            unregister();
          }
        });
      },
    );
}

/** GRPC_ADDR, GRPC_PORT, else the engine running on DATA_DIR (its run.json), else :50051. */
function defaultAddress(): string {
  const env = process.env;
  if (env["GRPC_ADDR"]) return env["GRPC_ADDR"];
  if (env["GRPC_PORT"]) return `127.0.0.1:${env["GRPC_PORT"]}`;
  const engine = findEngine();
  return engine.ok ? engine.info.grpc : "127.0.0.1:50051";
}

async function withClient(
  flags: ConnectionFlags,
  io: QueryIo,
  run: (client: RecoClient) => Promise<void>,
): Promise<void> {
  const options: RecoClientOptions = {};
  if (flags.caFile) options.tls = { caFile: flags.caFile };
  else if (flags.tls) options.tls = true;
  let client: RecoClient | undefined;
  const address = flags.address ?? defaultAddress();
  try {
    client = createRecoClient(address, options);
    await run(client);
  } catch (err) {
    io.err(
      `error: ${noEngine(err) ? `no engine at ${address}: start it with npm start (or point --address or GRPC_ADDR at one)` : describeError(err)}`,
    );
    io.setExitCode(1);
  } finally {
    client?.close();
  }
}

/**
 * Whether the call failed because nothing answered at the address (refused, or no connection
 * made before the deadline), rather than an answer of the engine's.
 */
function noEngine(err: unknown): boolean {
  const { code, details } = err as { code?: unknown; details?: unknown };
  if (typeof details !== "string") return false;
  if (code === status.UNAVAILABLE)
    return /No connection established|ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|Failed to connect/i.test(
      details,
    );
  return code === status.DEADLINE_EXCEEDED && /waiting for (LB pick|connection)/i.test(details);
}

/** `<STATUS NAME>: <details>` for gRPC errors, the message otherwise. */
function describeError(err: unknown): string {
  if (err instanceof Error) {
    const { code, details } = err as Error & { code?: unknown; details?: unknown };
    if (typeof code === "number" && typeof details === "string") {
      return `${statusName(code)}: ${details}`;
    }
    return err.message;
  }
  return String(err);
}

function parseInteger(value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`expected a non-negative integer, got "${value}"`);
  return Number(value);
}

function printRecommendations(response: GetRecommendationsResponse, io: QueryIo): void {
  io.out(
    `recommendations for ${response.userId} (watermark ${formatTimestamp(response.watermark)})`,
  );
  if (response.statusMessage) io.out(`note: ${response.statusMessage}`);
  if (response.items.length === 0) {
    io.out("(no recommendations)");
  } else {
    const rows = response.items.map((item) => [
      String(item.rank),
      item.itemId,
      formatScore(item.score),
      Source[item.source] ?? String(item.source),
      item.category || "-",
      item.brand || "-",
      item.averagePrice.toFixed(2),
    ]);
    const heads = ["RANK", "ITEM", "SCORE", "SOURCE", "CATEGORY", "BRAND", "AVG PRICE"];
    const right = [true, false, true, false, false, false, true];
    io.out(formatTable(...titled(response.items, heads, rows, right)));
  }
  const categories = response.topCategories.map((c) => `${c.category} (${c.interest})`);
  io.out(`top categories: ${categories.length > 0 ? categories.join(", ") : "-"}`);
}

function printTrending(update: TrendingUpdate, io: QueryIo): void {
  const window = update.window === TrendingWindow.ONE_DAY ? "24h" : "1h";
  io.out(
    `trending ${window} window ${formatTimestamp(update.windowStart)} .. ` +
      `${formatTimestamp(update.windowEnd)} ${update.final ? "(final)" : "(open)"}, ` +
      `watermark ${formatTimestamp(update.watermark)}`,
  );
  const weights = Object.entries(update.weights).filter(([, w]) => w > 0);
  if (weights.length > 0)
    io.out(`score = ${weights.map(([type, w]) => `${type} × ${String(w)}`).join(" + ")}`);
  if (update.items.length === 0) {
    io.out("(no items)");
    return;
  }
  const rows = update.items.map((item) => [
    String(item.rank),
    item.itemId,
    formatScore(item.score),
    String(item.views),
    String(item.clicks),
    String(item.carts),
    String(item.purchases),
  ]);
  const heads = ["RANK", "ITEM", "SCORE", "VIEWS", "CLICKS", "CARTS", "PURCHASES"];
  const right = [true, false, true, true, true, true, true];
  io.out(formatTable(...titled(update.items, heads, rows, right)));
}

/** Plain padded columns; `right[i]` right-aligns column i (numbers). */
export function formatTable(headers: string[], rows: string[][], right: boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        return right[i] ? cell.padStart(width) : cell.padEnd(width);
      })
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

function formatScore(score: number): string {
  return Number.isInteger(score) ? String(score) : score.toFixed(3);
}

function formatTimestamp(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString() : "none";
}

/**
 * A table's columns with the catalogue's titles beside the item ids, when any item has one (a
 * catalogue without titles prints as before).
 */
function titled(
  items: readonly { title: string }[],
  heads: string[],
  rows: string[][],
  right: boolean[],
): [string[], string[][], boolean[]] {
  if (!items.some((i) => i.title !== "")) return [heads, rows, right];
  const at = heads.indexOf("ITEM") + 1;
  const insert = <T>(xs: T[], x: T) => [...xs.slice(0, at), x, ...xs.slice(at)];
  return [
    insert(heads, "TITLE"),
    rows.map((r, k) => insert(r, items[k]!.title || "-")),
    insert(right, false),
  ];
}
