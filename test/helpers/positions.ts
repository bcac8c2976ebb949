import type { JetStreamManager } from "nats";
import { SETTINGS } from "../../bin/config-settings.js";
import { userPathInstances } from "../../bin/pipeline/plan-snapshots.js";
import { startTierOfStage } from "../../bin/pipeline/units.js";
import { newCovisitPartitions } from "../../bin/pipeline/config.js";

export interface Gauge {
  labels: Record<string, string>;
  value: number;
}

/** Every series of the metric `name` on an app's /metrics, with its labels. */
export async function gauges(port: number, name: string): Promise<Gauge[]> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out: Gauge[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels: Record<string, string> = {};
    for (const m of line.matchAll(/(\w+)="([^"]*)"/g)) labels[m[1]!] = m[2]!;
    out.push({ labels, value: Number(line.slice(line.lastIndexOf(" ") + 1)) });
  }
  return out;
}

/** The stream and subject each stage reads ("" : the whole stream). */
const inputOf: Record<string, (p: string) => [string, string]> = {
  parse: () => ["EVENTS", ""],
  watermark: (p) => ["RECO_HOPS", `reco.parse.${p}`],
  window: (p) => ["RECO_HOPS", `reco.watermark.${p}`],
  "interest-ranking": (p) => ["RECO_HOPS", `reco.window.${p}`],
  "popularity-join": (p) => ["RECO_HOPS", `reco.interest-ranking.${p}`],
  popularity: (p) => ["RECO_HOPS", `reco.items.${p}`],
  trending: (p) => ["RECO_HOPS", `reco.items.${p}`],
  history: (p) => ["RECO_HOPS", `reco.parse.${p}`],
  collaborative: (p) => ["RECO_HOPS", `reco.parse.${p}`],
  drift: (p) => ["RECO_HOPS", `reco.parse.${p}`],
  catalogue: (p) => ["RECO_HOPS", `reco.items.${p}`],
  "catalogue-upsert": () => ["ITEMS", ""],
};

/**
 * The stage instances ("<stage>/<partition>") of an app with `partitions` partitions, and
 * `covisit` item partitions of co-visitation (by default, what a new deployment gets).
 */
export function stageIds(
  ranker: "design" | "blend",
  partitions: number,
  quality = true,
  chaining = (process.env.CHAINING ?? SETTINGS.chaining.default) === "on",
  covisit = newCovisitPartitions(partitions),
): string[] {
  // The user path's instances as the app plans them (chained within a start tier).
  const perPartition = userPathInstances(chaining, () => "main", startTierOfStage).map(
    (i) => i.stage,
  );
  perPartition.push("popularity", "trending", "catalogue");
  if (quality) perPartition.push("drift");
  if (ranker === "blend") perPartition.push("history");
  const ids = ["parse/0", "catalogue-upsert/0"];
  for (let p = 0; p < partitions; p++) for (const s of perPartition) ids.push(`${s}/${p}`);
  if (ranker === "blend") {
    for (let q = 0; q < covisit; q++) ids.push(`covisit/${q}`);
    for (let p = 0; p < partitions; p++) ids.push(`collaborative/${p}`);
    ids.push("collaborative-trainer/0");
  }
  // Online quality's scorer runs inside each history/<p> (no instance of its own).
  return ids;
}

/** How many of `ids` have no reco_stage_position series in `positions` (not started yet). */
export function stagesMissing(ids: readonly string[], positions: Gauge[]): number {
  const seen = new Set(positions.map((g) => `${g.labels.stage}/${g.labels.partition}`));
  return ids.filter((id) => !seen.has(id)).length;
}

/**
 * How many supervised children (stage instances, the serving actors, the KV feeds) have failed
 * more often than they were restarted: a restart still pending (in backoff). Such a stage keeps
 * its last reco_stage_position until the new incarnation starts, so positions alone would call
 * it caught up, and a failed popularity-join leaves its partition "not serving yet".
 */
export async function childrenDown(port: number): Promise<number> {
  const errors = await gauges(port, "reco_stage_errors_total");
  const restarts = new Map(
    (await gauges(port, "reco_stage_restarts_total")).map((g) => [
      `${g.labels.stage}/${g.labels.partition}`,
      g.value,
    ]),
  );
  return errors.filter(
    (g) => g.value > (restarts.get(`${g.labels.stage}/${g.labels.partition}`) ?? 0),
  ).length;
}

/**
 * How many of the stage instances in `positions` (reco_stage_position) have not yet processed
 * the last message of their input; stages without a known input are not counted.
 */
export async function stagesBehind(jsm: JetStreamManager, positions: Gauge[]): Promise<number> {
  let behind = 0;
  const lastOf = (stream: string, subject: string) =>
    jsm.streams
      .getMessage(stream, { last_by_subj: subject })
      .then((m) => m.seq)
      // Nothing on the subject yet: nothing to be behind. Any other error (a request timeout
      // under load) says nothing, so the instance counts as behind.
      .catch((err: { code?: unknown }) => (String(err.code) === "404" ? 0 : Infinity));
  // User partitions: a covisit stage reads one subject of pairs from each, the trainer one of rows.
  const users = positions.filter((g) => g.labels.stage === "history").length;
  for (const { labels, value } of positions) {
    let end: number;
    if (labels.stage === "covisit") {
      const ends = await Promise.all(
        Array.from({ length: users }, (_, p) =>
          lastOf("RECO_HOPS", `reco.pairs.${labels.partition}.${p}`),
        ),
      );
      end = Math.max(0, ...ends);
    } else if (labels.stage === "collaborative-trainer") {
      // The trainer reads every user partition's collaborative rows.
      const ends = await Promise.all(
        Array.from({ length: users }, (_, p) => lastOf("RECO_HOPS", `reco.collab.${p}`)),
      );
      end = Math.max(0, ...ends);
    } else {
      // A chain (CHAINING=on: "watermark+window+...") reads its first stage's input.
      const input = inputOf[labels.stage!.split("+")[0]!];
      if (!input) continue;
      const [stream, subject] = input(labels.partition!);
      end =
        subject === ""
          ? (await jsm.streams.info(stream)).state.last_seq
          : await lastOf(stream, subject);
    }
    if (value < end) behind++;
  }
  return behind;
}
