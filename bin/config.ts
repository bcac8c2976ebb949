import { resolve } from "node:path";
import type { PipelineConfig } from "./pipeline/config.js";
import { SETTINGS, type SettingName } from "./config-settings.js";
import {
  ConfigError,
  armsSetting,
  corsOrigins,
  createReader,
  isMoviesCsv,
  redactUrl,
  trendingWeights,
  apiKeys,
} from "./config-values.js";

/**
 * The app's config: which settings each part of the app gets (connections, serving, the
 * pipeline), read and validated at start. The table is config-settings.ts, reading and
 * validating one value config-values.ts.
 */

export { SETTINGS, flagOf, type SettingName } from "./config-settings.js";
export { ConfigError } from "./config-values.js";

export interface AppConfig {
  /** Unset: start a private nats-server child. */
  natsUrl: string | undefined;
  natsPort: number;
  /** Monitoring port (/varz, /jsz) of the private nats-server, on loopback; 0: none. */
  natsMonitorPort: number;
  /** NATS_RESTART_AFTER_MS: a private nats-server not answering this long is restarted; 0: never. */
  natsRestartAfterMs: number;
  /** LIVENESS_TIMEOUT_MS: /livez fails once a stage has failed this long; 0: never. */
  livenessTimeoutMs: number;
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
  /** API_KEYS: keys a JSON API write needs (and a read, off loopback); empty: writes refused. */
  apiKeys: string[];
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
  /**
   * PARSE_PROCESS_STAGES: what the parse process runs besides parse: nothing (`parse`), or the
   * stages no answer reads in the main process (`ingest`: bin/pipeline/units.ts).
   */
  parseProcessStages: "parse" | "ingest";
  /**
   * SERVE_PROCESS: `reco start` serves gRPC and HTTP from its own process, which runs no stage,
   * and runs the stages in a child at INGEST_NICE (bin/serve-app.ts).
   */
  serveProcess: boolean;
  ingestNice: number;
  /**
   * HEAP_GROWING_PERCENT: V8's --heap-growing-percent for this process once started (0: V8's
   * own factor).
   * V8 lets the heap grow up to 4x what its last full GC kept: at 300k users the app held
   * 622 MiB of heap for ~120 MB live (bench step 7), RSS that counted as state.
   */
  heapGrowingPercent: number;
  /** HEAP_GROWING_MIN_MB: the least growth in MiB, whatever the percent (bin/heap-growth.ts). */
  heapGrowingMinMb: number;
  /** HEAP_QUIET_GC_MS: one full GC once quiet this long after work (0: never; bin/heap-growth.ts). */
  heapQuietGcMs: number;
  /** CA bundle (PEM) that verifies the NATS server; any NATS_TLS_* setting makes TLS required. */
  natsTlsCa?: string;
  /** Client certificate and key (PEM) for NATS mutual TLS. */
  natsTlsCert?: string;
  natsTlsKey?: string;
  pipeline: PipelineConfig & ParseSettings;
}

/**
 * Settings of the parse stage that bin/pipeline/pipeline.ts passes to createParseHandler:
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

/**
 * Reads every setting from flags (first) and the environment, validates it and returns the
 * config. Throws ConfigError naming the first bad setting; nothing has been touched by then.
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined> = {},
): AppConfig {
  const { num, str, together } = createReader(env, flags);

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
        `MOVIES_CATALOG=${JSON.stringify(moviesCatalog)} is not valid: expected a MovieLens movies.csv (header movieId,title,genres) or an ml-100k u.item`,
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
    chaining: str("chaining") === "on",
    inputAlignment: str("inputAlignment") === "on",
    qualitySample: num("qualitySample"),
    retrainIntervalMs: num("retrainIntervalMs"),
    answerMaxAgeMs: num("answerMaxAgeMs"),
    windowMs: num("windowMs"),
    userOutOfOrdernessMs: num("userOutOfOrdernessMs"),
    trendingHourOutOfOrdernessMs: num("trendingHourOutOfOrdernessMs"),
    trendingDayOutOfOrdernessMs: num("trendingDayOutOfOrdernessMs"),
    interestHorizonMs: num("interestHorizonMs"),
    popularityHorizonMs: num("popularityHorizonMs"),
    topCategories: num("topCategories"),
    fallbackSize: num("fallbackSize"),
    // The movies preset's events are ratings: counted by their value unless weights are set.
    trendingWeights:
      str("preset") === "movies" &&
      [
        str("trendingWeights"),
        ...["TRENDING_VIEW_WEIGHT", "TRENDING_CLICK_WEIGHT"].map((k) => flags[k] ?? env[k]),
      ].every((v) => v === undefined || v === "")
        ? { rating: 1 }
        : trendingWeights(str("trendingWeights"), num("viewWeight"), num("clickWeight")),
    trendingTriggerMs: num("trendingTriggerMs"),
    snapshotIntervalMs: num("snapshotIntervalMs"),
    snapshotEveryMessages: num("snapshotEveryMessages"),
    batchMaxRecords: num("batchMaxRecords"),
    batchMaxDelayMs: num("batchMaxDelayMs"),
    pairsMaxDelayMs: num("pairsMaxDelayMs"),
    ...(str("covisitPartitions") !== undefined
      ? { covisitPartitions: num("covisitPartitions") }
      : {}),
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
    natsRestartAfterMs: num("natsRestartAfterMs"),
    livenessTimeoutMs: num("livenessTimeoutMs"),
    dataDir: resolve(str("dataDir") ?? "./data"),
    grpcPort: num("grpcPort"),
    grpcHost: str("grpcHost") ?? "127.0.0.1",
    metricsPort: num("metricsPort"),
    metricsHost: str("metricsHost") ?? "127.0.0.1",
    webPort: num("webPort"),
    webHost: str("webHost") ?? "127.0.0.1",
    webPortFallback: (flags.WEB_PORT ?? env.WEB_PORT ?? "") === "",
    webCorsOrigins: corsOrigins(str("webCorsOrigins")),
    apiKeys: apiKeys(str("apiKeys")),
    healthStageFailingMs: num("healthStageFailingMs"),
    logLevel: str("logLevel") ?? "info",
    grpcMaxMessageBytes: num("grpcMaxMessageBytes"),
    parseProcess: str("parseProcess") === "1",
    parseProcessStages: str("parseProcessStages") === "ingest" ? "ingest" : "parse",
    serveProcess: str("serveProcess") === "1",
    ingestNice: num("ingestNice"),
    heapGrowingPercent: num("heapGrowingPercent"),
    heapGrowingMinMb: num("heapGrowingMinMb"),
    heapQuietGcMs: num("heapQuietGcMs"),
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
