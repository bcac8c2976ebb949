/** The settings table: every setting of `reco start`, by environment variable. */

/** "file": the path of a readable regular file, checked at start (before anything is touched). */
type Kind = "port" | "int" | "ms" | "number" | "string" | "enum" | "file";
export interface Setting {
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
  natsRestartAfterMs: {
    env: "NATS_RESTART_AFTER_MS",
    kind: "ms",
    default: "20000",
    min: 0,
    help: "the private nats-server is restarted when it or its JetStream has not answered this long (a full disk hangs JetStream until restart); never while it is SIGSTOPped; 0: never",
  },
  livenessTimeoutMs: {
    env: "LIVENESS_TIMEOUT_MS",
    kind: "ms",
    default: "300000",
    min: 0,
    help: "/livez answers 503 once a stage has failed without recovering this long, so a supervisor restarts the process; 0: never",
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
  apiKeys: {
    env: "API_KEYS",
    kind: "string",
    help: "keys (comma-separated) that writes to the JSON API need (POST /v1/events), sent as Authorization: Bearer <key> or X-API-Key: <key>; with WEB_HOST other than loopback, reads need one too; unset: writes are refused",
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
  parseProcessStages: {
    env: "PARSE_PROCESS_STAGES",
    kind: "enum",
    // parse until an A/B shows the ingest cut gaining (bench/README "What limits":
    // on 2 busy cores it moved CPU between the processes without lowering the total).
    default: "parse",
    values: ["parse", "ingest"],
    help: "reco start with PARSE_PROCESS=1: the parse process runs parse alone, or (ingest) also watermark, window, interest-ranking, drift, popularity and trending",
  },
  serveProcess: {
    env: "SERVE_PROCESS",
    kind: "enum",
    // 0: with the blend's replica in the serving process the split costs memory and ingest (docs/
    // HOW-IT-WORKS.md, "Serving apart from ingest"); before that replica existed, split, a blended answer waited for the ingest process, and after a
    // SIGKILL with 1M users right answers came back at the ingest process's ready line, 18-21 s,
    // against 7.2 s in one process (bench step 6).
    default: "0",
    values: ["0", "1"],
    help: "reco start: 1 serves gRPC and HTTP from a process that runs no stage, the stages in a child at INGEST_NICE; 0 all in one process",
  },
  ingestNice: {
    env: "INGEST_NICE",
    kind: "int",
    default: "10",
    min: 0,
    max: 19,
    help: "reco start with SERVE_PROCESS=1: niceness of the ingest process (and its parse process)",
  },
  heapGrowingPercent: {
    env: "HEAP_GROWING_PERCENT",
    kind: "int",
    default: "25",
    min: 0,
    max: 1000,
    help: "once started, the V8 heap grows this percent above what the last full GC kept before the next full GC (V8's --heap-growing-percent); 0: V8's own, up to 4x",
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
    help: 'off: no drift stages and no prequential scoring (README "Quality")',
  },
  chaining: {
    env: "CHAINING",
    kind: "enum",
    default: "on",
    values: ["on", "off"],
    help: 'on: each partition\'s user path (watermark, window, interest-ranking, popularity-join) runs as one chain, records passed in memory (docs/HOW-IT-WORKS.md "Chains"); off: every stage behind its own JetStream subject',
  },
  qualitySample: {
    env: "QUALITY_SAMPLE",
    kind: "number",
    default: "0.1",
    min: 0.001,
    max: 1,
    help: 'share of users whose target events the prequential scorer scores, chosen by a hash of the user id (1: all; README "Quality")',
  },
  arms: {
    env: "ARMS",
    kind: "string",
    help: 'A/B arms, a JSON array: [{"name":"a","share":50,"ranker":"design"},{"name":"b","share":50,"ranker":"blend"}] (README "Quality")',
  },
  answerMaxAgeMs: {
    env: "ANSWER_MAX_AGE_MS",
    kind: "ms",
    default: "0",
    min: 0,
    max: 60000,
    help: "RANKER=blend: bounded staleness, off by default; above 0 a blended answer is served again for this long although its data changed, with its staleness_ms saying how old it may be",
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
    help: 'trending score weight per event type, e.g. "view=1,click=2,cart=3,purchase=5"; types left out count 0; a rating counts its value. Unset: view=1,click=2,cart=3,purchase=5 (views and clicks by TRENDING_VIEW_WEIGHT, TRENDING_CLICK_WEIGHT), and rating=1 with PRESET=movies',
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
  pairsMaxDelayMs: {
    env: "PAIRS_MAX_DELAY_MS",
    kind: "ms",
    default: "100",
    min: 1,
    help: "max wait before co-visitation's pairs go to the item partitions (RANKER=blend)",
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
