import { accessSync, closeSync, constants, openSync, readSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { PipelineConfig } from "./pipeline/pipeline.js";
import { EVENT_TYPES, type EventType } from "../actors/event.js";
import type { TrendingWeights } from "../actors/trending.js";
import { parseArms, type Arm } from "../actors/arms.js";

/** Raised at start when a setting is invalid: names the setting, the value and the expected form. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface AppConfig {
  /** Unset: start a private nats-server child. */
  natsUrl: string | undefined;
  natsPort: number;
  /** Monitoring port (/varz, /jsz) of the private nats-server, on loopback; 0: none. */
  natsMonitorPort: number;
  dataDir: string;
  grpcPort: number;
  grpcHost: string;
  metricsPort: number;
  /** METRICS_HOST: bind address of /metrics and /healthz (loopback unless set). */
  metricsHost: string;
  /** JSON/HTTP API and web console (connectors/http/api.ts). */
  webPort: number;
  webHost: string;
  /**
   * WEB_PORT was not set: if the default port is taken (a second instance, a test), the console
   * takes a free port instead of failing the start, and the ready line prints the one it got.
   */
  webPortFallback: boolean;
  /** Origins a browser may call the JSON API from (CORS); `*` any; empty: same origin only. */
  webCorsOrigins: string[];
  /** HEALTH_STAGE_FAILING_MS: a stage failing this long makes /healthz and gRPC health NOT_SERVING. */
  healthStageFailingMs: number;
  logLevel: string;
  natsUser?: string;
  natsPass?: string;
  natsToken?: string;
  natsCreds?: string;
  grpcTlsCert?: string;
  grpcTlsKey?: string;
  /** Largest gRPC request accepted; larger ones get RESOURCE_EXHAUSTED. */
  grpcMaxMessageBytes: number;
  /**
   * PARSE_PROCESS: `reco start` runs the parse unit in a child process of its own (a second
   * core), the other units, serving and gRPC in the main one (bin/parse-process.ts).
   */
  parseProcess: boolean;
  /** CA bundle (PEM) that verifies the NATS server; any NATS_TLS_* setting makes TLS required. */
  natsTlsCa?: string;
  /** Client certificate and key (PEM) for NATS mutual TLS. */
  natsTlsCert?: string;
  natsTlsKey?: string;
  pipeline: PipelineConfig & ParseSettings;
}

/**
 * Settings of the parse stage that bin/pipeline/pipeline.ts passes to createParseHandler (issue 3):
 * `idle: { timeoutMs: cfg.idleTimeoutMs, probe }` and the movies catalogue.
 */
export interface ParseSettings {
  /** IDLE_TIMEOUT_MS: quiet processing time before event time moves on; 0: never. */
  idleTimeoutMs: number;
  /** MAX_FUTURE_SKEW_MS: events further ahead of their stored time are dead-lettered; 0: off. */
  maxFutureSkewMs: number;
  /** MOVIES_CATALOG: MovieLens movies.csv whose first genres are the categories (PRESET=movies). */
  moviesCatalog?: string;
}

/** "file": the path of a readable regular file, checked at start (before anything is touched). */
type Kind = "port" | "int" | "ms" | "number" | "string" | "enum" | "file";
interface Setting {
  env: string;
  kind: Kind;
  default?: string;
  min?: number;
  max?: number;
  values?: string[];
  help: string;
}

/** Every setting, by environment variable; flags use the same name in kebab case (--grpc-port). */
export const SETTINGS = {
  natsUrl: {
    env: "NATS_URL",
    kind: "string",
    help: "existing NATS server or cluster (comma-separated URLs); unset: start a private nats-server -js",
  },
  natsPort: {
    env: "NATS_PORT",
    kind: "port",
    default: "4222",
    help: "port of the private nats-server",
  },
  natsMonitorPort: {
    env: "NATS_MONITOR_PORT",
    kind: "port",
    default: "8222",
    help: "monitoring port (/varz, /jsz) of the private nats-server, bound to loopback; 0: none",
  },
  dataDir: {
    env: "DATA_DIR",
    kind: "string",
    default: "./data",
    help: "state (LevelDB) and private nats-server store",
  },
  grpcPort: { env: "GRPC_PORT", kind: "port", default: "50051", help: "gRPC façade port" },
  grpcHost: {
    env: "GRPC_HOST",
    kind: "string",
    default: "127.0.0.1",
    help: "gRPC bind address (0.0.0.0: every interface)",
  },
  metricsPort: {
    env: "METRICS_PORT",
    kind: "port",
    default: "9464",
    help: "HTTP /metrics and /healthz port",
  },
  metricsHost: {
    env: "METRICS_HOST",
    kind: "string",
    default: "127.0.0.1",
    help: "/metrics and /healthz bind address (0.0.0.0: every interface)",
  },
  healthStageFailingMs: {
    env: "HEALTH_STAGE_FAILING_MS",
    kind: "ms",
    default: "30000",
    min: 0,
    help: "a stage failing (restarting) this long makes /healthz and gRPC health NOT_SERVING",
  },

  webPort: {
    env: "WEB_PORT",
    kind: "port",
    default: "8080",
    help: "JSON/HTTP API and web console port",
  },
  webHost: {
    env: "WEB_HOST",
    kind: "string",
    default: "127.0.0.1",
    help: "JSON/HTTP API and web console bind address",
  },
  webCorsOrigins: {
    env: "WEB_CORS_ORIGINS",
    kind: "string",
    help: "origins allowed to call the JSON API from a browser (comma-separated, or *); unset: same origin only",
  },
  logLevel: {
    env: "LOG_LEVEL",
    kind: "enum",
    default: "info",
    values: ["fatal", "error", "warn", "info", "debug", "trace", "silent"],
    help: "log level",
  },
  parseProcess: {
    env: "PARSE_PROCESS",
    kind: "enum",
    default: "1",
    values: ["0", "1"],
    help: "reco start: 1 runs parse in a child process (a second core), 0 in the main process",
  },
  partitions: {
    env: "PARTITIONS",
    kind: "int",
    default: "8",
    min: 1,
    max: 256,
    help: "partitions per path",
  },
  preset: {
    env: "PRESET",
    kind: "enum",
    default: "ecommerce",
    values: ["ecommerce", "movies"],
    help: "movies: a rating >= 4 counts as a purchase",
  },
  ranker: {
    env: "RANKER",
    kind: "enum",
    default: "blend",
    values: ["blend", "design"],
    help: "blend: history, similar items, ALS, trending and popularity blended (DESIGN §3.7); design: §3.4–3.6's ranking only",
  },
  quality: {
    env: "QUALITY",
    kind: "enum",
    default: "on",
    values: ["on", "off"],
    help: 'off: no drift and prequential stages (README "Quality"; they cost a second copy of the sources)',
  },
  qualitySample: {
    env: "QUALITY_SAMPLE",
    kind: "number",
    default: "0.1",
    min: 0.001,
    max: 1,
    help: 'share of target events the prequential stage scores, chosen by a hash of the event id (1: all; README "Quality")',
  },
  arms: {
    env: "ARMS",
    kind: "string",
    help: 'A/B arms, a JSON array: [{"name":"a","share":50,"ranker":"design"},{"name":"b","share":50,"ranker":"blend"}] (README "Quality")',
  },
  retrainIntervalMs: {
    env: "RETRAIN_INTERVAL_MS",
    kind: "ms",
    default: "3600000",
    min: 60000,
    help: "RANKER=blend: event time between ALS trainings (also trained when the input goes idle)",
  },
  moviesCatalog: {
    env: "MOVIES_CATALOG",
    kind: "file",
    help: "MovieLens movies.csv: an event without category_code gets its movie's first genre (PRESET=movies)",
  },
  idleTimeoutMs: {
    env: "IDLE_TIMEOUT_MS",
    kind: "ms",
    default: "30000",
    min: 0,
    help: "quiet time (input caught up, no new event) before event time follows wall time; 0: never",
  },
  maxFutureSkewMs: {
    env: "MAX_FUTURE_SKEW_MS",
    kind: "ms",
    default: "3600000",
    min: 0,
    help: "events dated further ahead of when NATS stored them are dead-lettered (event_ts_in_future); 0: off",
  },
  windowMs: {
    env: "WINDOW_MS",
    kind: "ms",
    default: "300000",
    min: 1000,
    help: "user-path tumbling window",
  },
  userOutOfOrdernessMs: {
    env: "USER_OUT_OF_ORDERNESS_MS",
    kind: "ms",
    default: "600000",
    min: 0,
    help: "allowed disorder, user path",
  },
  trendingHourOutOfOrdernessMs: {
    env: "TRENDING_1H_OUT_OF_ORDERNESS_MS",
    kind: "ms",
    default: "7200000",
    min: 0,
    help: "allowed disorder, 1 h trending",
  },
  trendingDayOutOfOrdernessMs: {
    env: "TRENDING_24H_OUT_OF_ORDERNESS_MS",
    kind: "ms",
    default: "93600000",
    min: 0,
    help: "allowed disorder, 24 h trending",
  },
  interestHorizonMs: {
    env: "INTEREST_HORIZON_MS",
    kind: "ms",
    default: "86400000",
    min: 1000,
    help: "category interest horizon and purchase exclusion",
  },
  popularityHorizonMs: {
    env: "POPULARITY_HORIZON_MS",
    kind: "ms",
    default: "604800000",
    min: 3600000,
    help: "product popularity horizon",
  },
  topCategories: {
    env: "TOP_CATEGORIES",
    kind: "int",
    default: "3",
    min: 1,
    max: 50,
    help: "categories kept per user",
  },
  fallbackSize: {
    env: "FALLBACK_SIZE",
    kind: "int",
    default: "10",
    min: 1,
    max: 100,
    help: "size of the popular fallback list",
  },
  trendingWeights: {
    env: "TRENDING_WEIGHTS",
    kind: "string",
    help: 'trending score weight per event type, e.g. "view=1,click=2,cart=3,purchase=5"; types left out count 0',
  },
  viewWeight: {
    env: "TRENDING_VIEW_WEIGHT",
    kind: "number",
    default: "1",
    min: 0,
    help: "trending score weight of a view",
  },
  clickWeight: {
    env: "TRENDING_CLICK_WEIGHT",
    kind: "number",
    default: "2",
    min: 0,
    help: "trending score weight of a click",
  },
  trendingTriggerMs: {
    env: "TRENDING_TRIGGER",
    kind: "ms",
    default: "5000",
    min: 10,
    help: "minimum interval between trending updates",
  },
  snapshotIntervalMs: {
    env: "SNAPSHOT_INTERVAL",
    kind: "ms",
    default: "2000",
    min: 50,
    max: 60000,
    help: "snapshot period",
  },
  snapshotEveryMessages: {
    env: "SNAPSHOT_EVERY",
    kind: "int",
    default: "20000",
    min: 1,
    help: "snapshot after this many input messages",
  },
  batchMaxRecords: {
    env: "BATCH_MAX_RECORDS",
    kind: "int",
    default: "1000",
    min: 1,
    max: 100000,
    help: "records per hop message (B)",
  },
  batchMaxDelayMs: {
    env: "BATCH_MAX_DELAY_MS",
    kind: "ms",
    default: "20",
    min: 1,
    help: "max wait before a hop message is sent (T)",
  },
  dedupeHorizonMs: {
    env: "DEDUPE_HORIZON_MS",
    kind: "ms",
    default: "93600000",
    min: 0,
    help: "event ids are remembered this far behind progress",
  },
  dedupeMaxIds: {
    env: "DEDUPE_MAX_IDS",
    kind: "int",
    default: "2000000",
    min: 1,
    help: "at most this many event ids remembered",
  },
  maxEventBytes: {
    env: "MAX_EVENT_BYTES",
    kind: "int",
    default: "65536",
    min: 256,
    help: "larger events are dead-lettered",
  },
  maxAttempts: {
    env: "MAX_ATTEMPTS",
    kind: "int",
    default: "3",
    min: 1,
    max: 100,
    help: "failures of one message before reco.dlq.poison",
  },
  duplicateWindowMs: {
    env: "DUPLICATE_WINDOW_MS",
    kind: "ms",
    default: "120000",
    min: 1000,
    help: "JetStream duplicate window",
  },
  replicas: {
    env: "REPLICAS",
    kind: "int",
    default: "1",
    min: 1,
    max: 5,
    help: "stream and bucket replicas",
  },
  natsUser: { env: "NATS_USER", kind: "string", help: "NATS user" },
  natsPass: { env: "NATS_PASS", kind: "string", help: "NATS password (never logged)" },
  natsToken: { env: "NATS_TOKEN", kind: "string", help: "NATS token (never logged)" },
  natsCreds: { env: "NATS_CREDS", kind: "file", help: "NATS credentials file" },
  natsTlsCa: {
    env: "NATS_TLS_CA",
    kind: "file",
    help: "CA bundle (PEM) to verify the NATS server; NATS over TLS",
  },
  natsTlsCert: {
    env: "NATS_TLS_CERT",
    kind: "file",
    help: "client certificate (PEM) for NATS mutual TLS; with NATS_TLS_KEY",
  },
  natsTlsKey: {
    env: "NATS_TLS_KEY",
    kind: "file",
    help: "client private key (PEM) for NATS mutual TLS",
  },
  grpcTlsCert: {
    env: "GRPC_TLS_CERT",
    kind: "file",
    help: "gRPC TLS certificate (PEM); with GRPC_TLS_KEY",
  },
  grpcTlsKey: { env: "GRPC_TLS_KEY", kind: "file", help: "gRPC TLS private key (PEM)" },
  grpcMaxMessageBytes: {
    env: "GRPC_MAX_MESSAGE_BYTES",
    kind: "int",
    default: "65536",
    min: 1024,
    max: 67108864,
    help: "largest gRPC request accepted (larger: RESOURCE_EXHAUSTED)",
  },
} satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

export const flagOf = (env: string) => `--${env.toLowerCase().replaceAll("_", "-")}`;

/**
 * Reads every setting from flags (first) and the environment, validates it and returns the
 * config. Throws ConfigError naming the first bad setting; nothing has been touched by then.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined> = {},
): AppConfig {
  const raw = (name: SettingName): string | undefined => {
    const s: Setting = SETTINGS[name];
    const v = flags[s.env] ?? env[s.env];
    return v === undefined || v === "" ? s.default : v;
  };
  const num = (name: SettingName): number => {
    const s: Setting = SETTINGS[name];
    const v = raw(name) ?? "";
    const n = Number(v);
    const expected =
      s.kind === "port"
        ? "a port number from 0 to 65535"
        : s.kind === "number"
          ? "a number"
          : s.kind === "ms"
            ? "a whole number of milliseconds"
            : "a whole number";
    const isWhole = s.kind !== "number";
    if (
      !/^-?\d+(\.\d+)?$/.test(v.trim()) ||
      !Number.isFinite(n) ||
      (isWhole && !Number.isInteger(n))
    )
      throw new ConfigError(`${s.env}=${JSON.stringify(v)} is not valid: expected ${expected}`);
    const min = s.kind === "port" ? 0 : s.min;
    const max = s.kind === "port" ? 65535 : s.max;
    if ((min !== undefined && n < min) || (max !== undefined && n > max))
      throw new ConfigError(
        `${s.env}=${v} is out of range: expected ${expected}` +
          (s.kind === "port" ? "" : ` from ${min ?? "-inf"} to ${max ?? "inf"}`),
      );
    return n;
  };
  const str = (name: SettingName): string | undefined => {
    const s: Setting = SETTINGS[name];
    const v = raw(name);
    if (s.kind === "enum" && v !== undefined && !s.values?.includes(v))
      throw new ConfigError(
        `${s.env}=${JSON.stringify(v)} is not valid: expected one of ${s.values?.join(", ")}`,
      );
    if (s.kind === "file" && v !== undefined) {
      const problem = fileProblem(v);
      if (problem !== undefined)
        throw new ConfigError(
          `${s.env}=${JSON.stringify(v)} is not valid: expected the path of a readable file (${problem})`,
        );
    }
    return v;
  };
  const together = (a: SettingName, b: SettingName, what: string) => {
    if ((str(a) === undefined) !== (str(b) === undefined))
      throw new ConfigError(
        `${SETTINGS[a].env} and ${SETTINGS[b].env} must be set together (${what}); only ${
          SETTINGS[str(a) === undefined ? b : a].env
        } is set`,
      );
  };

  const natsUrl = str("natsUrl");
  if (natsUrl !== undefined) {
    for (const u of natsUrl.split(",")) {
      if (!/^(nats|tls|ws|wss):\/\/[^\s/]+$|^[^\s/:]+:\d+$/.test(u.trim()))
        throw new ConfigError(
          `NATS_URL=${JSON.stringify(redactUrl(natsUrl))} is not valid: expected nats://host:port[,nats://host:port...]`,
        );
    }
  }
  together("grpcTlsCert", "grpcTlsKey", "paths to PEM files");
  together("natsTlsCert", "natsTlsKey", "paths to PEM files");
  together("natsUser", "natsPass", "NATS user and password");
  // One way to authenticate: the server would take one and silently ignore the others.
  const auths = (["natsUser", "natsToken", "natsCreds"] as const).filter(
    (k) => str(k) !== undefined,
  );
  if (auths.length > 1)
    throw new ConfigError(
      `${auths.map((k) => SETTINGS[k].env).join(" and ")} are both set: ` +
        "expected one NATS authentication (NATS_USER + NATS_PASS, NATS_TOKEN or NATS_CREDS)",
    );

  const moviesCatalog = str("moviesCatalog");
  if (moviesCatalog !== undefined) {
    if (str("preset") !== "movies")
      throw new ConfigError(
        `MOVIES_CATALOG is set but PRESET=${str("preset") ?? ""}: expected PRESET=movies (genres are the movies preset's categories)`,
      );
    if (!isMoviesCsv(moviesCatalog))
      throw new ConfigError(
        `MOVIES_CATALOG=${JSON.stringify(moviesCatalog)} is not valid: expected a MovieLens movies.csv (header movieId,title,genres)`,
      );
  }
  const parseSettings: ParseSettings = {
    idleTimeoutMs: num("idleTimeoutMs"),
    maxFutureSkewMs: num("maxFutureSkewMs"),
    ...(moviesCatalog !== undefined ? { moviesCatalog } : {}),
  };
  const pipeline: PipelineConfig & ParseSettings = {
    ...parseSettings,
    partitions: num("partitions"),
    preset: str("preset") as PipelineConfig["preset"],
    ranker: str("ranker") as NonNullable<PipelineConfig["ranker"]>,
    ...armsSetting(str("arms")),
    quality: str("quality") !== "off",
    qualitySample: num("qualitySample"),
    retrainIntervalMs: num("retrainIntervalMs"),
    windowMs: num("windowMs"),
    userOutOfOrdernessMs: num("userOutOfOrdernessMs"),
    trendingHourOutOfOrdernessMs: num("trendingHourOutOfOrdernessMs"),
    trendingDayOutOfOrdernessMs: num("trendingDayOutOfOrdernessMs"),
    interestHorizonMs: num("interestHorizonMs"),
    popularityHorizonMs: num("popularityHorizonMs"),
    topCategories: num("topCategories"),
    fallbackSize: num("fallbackSize"),
    trendingWeights: trendingWeights(str("trendingWeights"), num("viewWeight"), num("clickWeight")),
    trendingTriggerMs: num("trendingTriggerMs"),
    snapshotIntervalMs: num("snapshotIntervalMs"),
    snapshotEveryMessages: num("snapshotEveryMessages"),
    batchMaxRecords: num("batchMaxRecords"),
    batchMaxDelayMs: num("batchMaxDelayMs"),
    dedupeHorizonMs: num("dedupeHorizonMs"),
    dedupeMaxIds: num("dedupeMaxIds"),
    maxEventBytes: num("maxEventBytes"),
    maxAttempts: num("maxAttempts"),
    duplicateWindowMs: num("duplicateWindowMs"),
    replicas: num("replicas"),
  };
  if (pipeline.duplicateWindowMs < 3 * pipeline.snapshotIntervalMs)
    throw new ConfigError(
      `DUPLICATE_WINDOW_MS=${pipeline.duplicateWindowMs} is too short for SNAPSHOT_INTERVAL=${pipeline.snapshotIntervalMs}: ` +
        "expected at least 3 × the snapshot interval, so outputs replayed after a crash are recognised as duplicates",
    );
  // Event ids must be remembered at least as long as an event can still count somewhere, or a
  // duplicate that arrives late but within the allowed disorder is counted twice.
  const disorder = Math.max(
    pipeline.userOutOfOrdernessMs,
    pipeline.trendingHourOutOfOrdernessMs,
    pipeline.trendingDayOutOfOrdernessMs,
  );
  if (pipeline.dedupeHorizonMs < disorder)
    throw new ConfigError(
      `DEDUPE_HORIZON_MS=${pipeline.dedupeHorizonMs} is shorter than the allowed disorder of ${disorder} ms: ` +
        "expected at least the largest of USER_OUT_OF_ORDERNESS_MS, TRENDING_1H_OUT_OF_ORDERNESS_MS and " +
        "TRENDING_24H_OUT_OF_ORDERNESS_MS, so a late duplicate is still recognised",
    );
  const cfg: AppConfig = {
    natsUrl,
    natsPort: num("natsPort"),
    natsMonitorPort: num("natsMonitorPort"),
    dataDir: resolve(str("dataDir") ?? "./data"),
    grpcPort: num("grpcPort"),
    grpcHost: str("grpcHost") ?? "127.0.0.1",
    metricsPort: num("metricsPort"),
    metricsHost: str("metricsHost") ?? "127.0.0.1",
    webPort: num("webPort"),
    webHost: str("webHost") ?? "127.0.0.1",
    webPortFallback: (flags.WEB_PORT ?? env.WEB_PORT ?? "") === "",
    webCorsOrigins: corsOrigins(str("webCorsOrigins")),
    healthStageFailingMs: num("healthStageFailingMs"),
    logLevel: str("logLevel") ?? "info",
    grpcMaxMessageBytes: num("grpcMaxMessageBytes"),
    parseProcess: str("parseProcess") === "1",
    pipeline,
  };
  for (const k of OPTIONAL_STRINGS) {
    const v = str(k);
    if (v !== undefined) cfg[k] = v;
  }
  return cfg;
}

const OPTIONAL_STRINGS = [
  "natsUser",
  "natsPass",
  "natsToken",
  "natsCreds",
  "natsTlsCa",
  "natsTlsCert",
  "natsTlsKey",
  "grpcTlsCert",
  "grpcTlsKey",
] as const satisfies readonly (keyof AppConfig & SettingName)[];

/**
 * TRENDING_WEIGHTS ("view=1,click=2,cart=3,purchase=5") when set; otherwise the older two
 * settings TRENDING_VIEW_WEIGHT and TRENDING_CLICK_WEIGHT, which stay accepted (TRENDING_WEIGHTS
 * wins when both are set). A type without a weight does not count.
 */
function trendingWeights(text: string | undefined, view: number, click: number): TrendingWeights {
  if (text === undefined) return { view, click };
  const bad = (why: string) =>
    new ConfigError(
      `TRENDING_WEIGHTS=${JSON.stringify(text)} is not valid: ${why}; expected type=weight pairs ` +
        `separated by commas, types among ${EVENT_TYPES.join(", ")}, weights numbers >= 0`,
    );
  const weights: TrendingWeights = {};
  for (const pair of text.split(",")) {
    const m = /^\s*([a-z_]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(pair);
    if (!m) throw bad(`${JSON.stringify(pair.trim())} is not type=weight`);
    const type = m[1] as EventType;
    if (!EVENT_TYPES.includes(type)) throw bad(`unknown event type ${JSON.stringify(type)}`);
    if (type in weights) throw bad(`${type} is given twice`);
    weights[type] = Number(m[2]);
  }
  return weights;
}

/** WEB_CORS_ORIGINS: `*`, or origins such as `https://shop.example` (scheme, host, port). */
function corsOrigins(value: string | undefined): string[] {
  if (value === undefined) return [];
  const origins = value
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const o of origins)
    if (o !== "*" && !/^https?:\/\/[^\s/]+$/.test(o))
      throw new ConfigError(
        `WEB_CORS_ORIGINS=${JSON.stringify(value)} is not valid: expected * or comma-separated origins like https://shop.example:8443 (no path), got ${JSON.stringify(o)}`,
      );
  return origins;
}

/** Whether the file starts with the header of MovieLens movies.csv. */
function isMoviesCsv(path: string): boolean {
  const buf = Buffer.alloc(256);
  const fd = openSync(path, "r");
  try {
    const n = readSync(fd, buf, 0, buf.length, 0);
    const first =
      buf
        .toString("utf8", 0, n)
        .replace(/^\uFEFF/, "")
        .split(/\r?\n/)[0] ?? "";
    return (
      first
        .split(",")
        .map((c) => c.trim().replace(/^"|"$/g, ""))
        .join(",") === "movieId,title,genres"
    );
  } finally {
    closeSync(fd);
  }
}

/** Why `path` is not a readable regular file, or undefined when it is. */
function fileProblem(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return "not a regular file";
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "no such file";
    if (code === "EACCES") return "permission denied";
    return code ?? String(err);
  }
}

/**
 * The config with secrets masked, for the start-up log line: the NATS password and token, and
 * credentials written into NATS_URL (`nats://user:pass@host`, `nats://token@host`). Paths of
 * key and credentials files are not secrets and stay visible.
 */
export function redactConfig(cfg: AppConfig): Record<string, unknown> {
  const { natsPass, natsToken, ...rest } = cfg;
  return {
    ...rest,
    ...(natsPass !== undefined ? { natsPass: "***" } : {}),
    ...(natsToken !== undefined ? { natsToken: "***" } : {}),
    natsUrl: cfg.natsUrl === undefined ? undefined : redactUrl(cfg.natsUrl),
  };
}

/** Masks the user-info part of every URL in a list (up to the last `@` before the host). */
function redactUrl(urls: string): string {
  return urls.replace(/\/\/[^/,\s]*@/g, "//***@");
}

/** ARMS (actors/arms.ts), checked at start: the message names the setting, the arm and the field. */
function armsSetting(v: string | undefined): { arms?: Arm[] } {
  if (v === undefined || v.trim() === "") return {};
  try {
    return { arms: parseArms(v) };
  } catch (err) {
    throw new ConfigError(`ARMS is not valid: ${(err as Error).message}`);
  }
}
