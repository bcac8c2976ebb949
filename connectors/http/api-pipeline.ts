/**
 * `/v1/pipeline`: per stage and partition, what the metrics already know (consumer lag, position,
 * events in and out per second, restarts, errors, mailbox depth, dead letters, late events),
 * the event-time progress and the bad-event ratio, read from the process's Prometheus registry
 * (which also holds the parse child's series when parse runs apart), so the console and
 * Prometheus never disagree. Rates are the difference between two scrapes at least 1 s apart;
 * scrapes are made only when someone asks, at most once a second.
 */

export interface MetricsSource {
  /** Prometheus text exposition (the registry's `metrics()`). */
  metrics(): Promise<string>;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the Prometheus text format (0.0.4): comments skipped, label values unescaped. */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split("\n")) {
    if (l === "" || l.startsWith("#")) continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const lm of (m[2] ?? "").matchAll(label))
      labels[lm[1]!] = lm[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    const value = m[3] === "+Inf" ? Infinity : m[3] === "-Inf" ? -Infinity : Number(m[3]);
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/**
 * Input is counted in messages: events for parse, hop batches (up to BATCH_MAX_RECORDS records)
 * after it; records out counts records, so it is the throughput to compare across stages.
 */
export interface PartitionView {
  partition: number;
  lag: number;
  position: number;
  /** Event-time progress this instance reached (ISO), null before any. */
  eventTime: string | null;
  mailbox: number;
  messagesIn: number;
  messagesInPerSecond: number;
  recordsOut: number;
  recordsOutPerSecond: number;
  restarts: number;
  errors: number;
  deadLetters: number;
  late: number;
  duplicates: number;
  stateKeys: number;
}

export interface StageView {
  stage: string;
  lag: number;
  /** The least event-time progress over its partitions (the one holding it back), ISO. */
  eventTime: string | null;
  messagesInPerSecond: number;
  recordsOutPerSecond: number;
  restarts: number;
  deadLetters: number;
  late: number;
  partitions: PartitionView[];
}

export interface PipelineView {
  at: string;
  /** Seconds the rates cover (0 on the first scrape: rates are 0 then). */
  rateWindowSeconds: number;
  eventTime: { progress: string | null };
  events: {
    in: number;
    inPerSecond: number;
    accepted: number;
    duplicates: number;
    deadLettered: number;
    deadLetterReasons: Record<string, number>;
    late: number;
    badRatio: number;
    badRatioAlert: boolean;
  };
  stages: StageView[];
  /** The stage furthest behind (largest consumer lag, then lowest throughput), if any is. */
  slowest: { stage: string; partition: number; lag: number; why: string } | null;
}

/** Stages in pipeline order (bin/pipeline/pipeline.ts); others follow by name. */
const ORDER = [
  "parse",
  "watermark",
  "window",
  "interest-ranking",
  "popularity-join",
  "fallback",
  "popularity",
  "trending",
  "catalogue",
  "catalogue-upsert",
];

export function createPipelineView(source: MetricsSource, clock: () => number = Date.now) {
  let prev: { t: number; samples: Sample[] } | undefined;
  let cur: { t: number; samples: Sample[] } | undefined;
  let cached: { t: number; view: Promise<PipelineView> } | undefined;

  const scrape = async (): Promise<PipelineView> => {
    const samples = parsePrometheusText(await source.metrics());
    const t = clock();
    if (!cur || t - cur.t >= 1000) {
      prev = cur;
      cur = { t, samples };
    }
    return build(cur.samples, prev, cur.t, t);
  };
  return {
    /** The view now (one scrape per second at most, shared by concurrent callers). */
    read(): Promise<PipelineView> {
      const t = clock();
      if (!cached || t - cached.t >= 1000) {
        const view = scrape();
        cached = { t, view };
        view.catch(() => (cached = undefined));
      }
      return cached.view;
    },
  };
}

function build(
  samples: Sample[],
  prev: { t: number; samples: Sample[] } | undefined,
  t: number,
  now: number,
): PipelineView {
  const seconds = prev ? (t - prev.t) / 1000 : 0;
  const key = (s: Sample) => `${s.labels.stage ?? ""}/${s.labels.partition ?? ""}`;
  const before = new Map<string, number>();
  for (const s of prev?.samples ?? []) before.set(`${s.name} ${key(s)}`, s.value);
  const rate = (s: Sample) =>
    seconds > 0 ? Math.max(0, (s.value - (before.get(`${s.name} ${key(s)}`) ?? 0)) / seconds) : 0;

  const parts = new Map<string, PartitionView & { stage: string }>();
  const part = (s: Sample) => {
    const stage = s.labels.stage ?? "";
    const partition = Number(s.labels.partition ?? 0) || 0;
    const k = `${stage}/${partition}`;
    let p = parts.get(k);
    if (!p)
      parts.set(
        k,
        (p = {
          stage,
          partition,
          lag: 0,
          position: 0,
          eventTime: null,
          mailbox: 0,
          messagesIn: 0,
          messagesInPerSecond: 0,
          recordsOut: 0,
          recordsOutPerSecond: 0,
          restarts: 0,
          errors: 0,
          deadLetters: 0,
          late: 0,
          duplicates: 0,
          stateKeys: 0,
        }),
      );
    return p;
  };
  const events = {
    in: 0,
    inPerSecond: 0,
    accepted: 0,
    duplicates: 0,
    deadLettered: 0,
    deadLetterReasons: {} as Record<string, number>,
    late: 0,
    badRatio: 0,
    badRatioAlert: false,
  };
  let progress = -1;
  for (const s of samples) {
    switch (s.name) {
      case "reco_stage_consumer_lag":
        part(s).lag = s.value;
        break;
      case "reco_stage_position":
        part(s).position = s.value;
        break;
      case "reco_stage_event_time_ms":
        part(s).eventTime = s.value > 0 ? new Date(s.value).toISOString() : null;
        break;
      case "reco_stage_mailbox_depth":
        part(s).mailbox = s.value;
        break;
      case "reco_stage_state_keys":
        part(s).stateKeys = s.value;
        break;
      case "reco_stage_messages_in_total":
        part(s).messagesIn = s.value;
        part(s).messagesInPerSecond = rate(s);
        break;
      case "reco_stage_records_out_total":
        part(s).recordsOut = s.value;
        part(s).recordsOutPerSecond = rate(s);
        break;
      case "reco_stage_restarts_total":
        part(s).restarts = s.value;
        break;
      case "reco_stage_errors_total":
        part(s).errors = s.value;
        break;
      case "reco_stage_count": {
        // Exact counts from the snapshots: dead_letter and dead_letter:<reason>, late, duplicate.
        const name = s.labels.name ?? "";
        if (name === "dead_letter") part(s).deadLetters = s.value;
        else if (name === "late") part(s).late = s.value;
        else if (name === "duplicate") part(s).duplicates = s.value;
        break;
      }
      case "reco_events_in_total":
        events.in = s.value;
        events.inPerSecond = rate(s);
        break;
      case "reco_events_accepted_total":
        events.accepted = s.value;
        break;
      case "reco_events_duplicate_total":
        events.duplicates = s.value;
        break;
      case "reco_events_dead_lettered_total":
        events.deadLettered += s.value;
        events.deadLetterReasons[s.labels.reason ?? "unknown"] = s.value;
        break;
      case "reco_events_late_total":
        events.late += s.value;
        break;
      case "reco_bad_event_ratio":
        events.badRatio = s.value;
        break;
      case "reco_bad_event_ratio_alert":
        events.badRatioAlert = s.value > 0;
        break;
      case "reco_event_time_progress_ms":
        progress = Math.max(progress, s.value);
        break;
    }
  }
  const byStage = new Map<string, PartitionView[]>();
  for (const { stage, ...p } of parts.values()) {
    if (stage === "") continue;
    let list = byStage.get(stage);
    if (!list) byStage.set(stage, (list = []));
    list.push(p);
  }
  const rankOf = (s: string) => (ORDER.includes(s) ? ORDER.indexOf(s) : ORDER.length);
  const stages: StageView[] = [...byStage.entries()]
    .sort(([a], [b]) => rankOf(a) - rankOf(b) || a.localeCompare(b))
    .map(([stage, partitions]) => {
      partitions.sort((a, b) => a.partition - b.partition);
      const sum = (f: (p: PartitionView) => number) => partitions.reduce((t, p) => t + f(p), 0);
      return {
        stage,
        lag: sum((p) => p.lag),
        eventTime: partitions.reduce<string | null>(
          (min, p) =>
            p.eventTime !== null && (min === null || p.eventTime < min) ? p.eventTime : min,
          null,
        ),
        messagesInPerSecond: sum((p) => p.messagesInPerSecond),
        recordsOutPerSecond: sum((p) => p.recordsOutPerSecond),
        restarts: sum((p) => p.restarts),
        deadLetters: sum((p) => p.deadLetters),
        late: sum((p) => p.late),
        partitions,
      };
    });
  let slowest: PipelineView["slowest"] = null;
  for (const st of stages)
    for (const p of st.partitions)
      if (p.lag + p.mailbox > 0 && (!slowest || p.lag + p.mailbox > slowest.lag))
        slowest = {
          stage: st.stage,
          partition: p.partition,
          lag: p.lag + p.mailbox,
          why: `${p.lag} messages pending on its consumer, ${p.mailbox} in its mailbox`,
        };
  return {
    at: new Date(now).toISOString(),
    rateWindowSeconds: seconds,
    eventTime: { progress: progress > 0 ? new Date(progress).toISOString() : null },
    events,
    stages,
    slowest,
  };
}
