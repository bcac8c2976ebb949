import type { JetStreamManager } from "nats";

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
};

/**
 * How many of the stage instances in `positions` (reco_stage_position) have not yet processed
 * the last message of their input; stages without a known input are not counted.
 */
export async function stagesBehind(jsm: JetStreamManager, positions: Gauge[]): Promise<number> {
  let behind = 0;
  for (const { labels, value } of positions) {
    const input = inputOf[labels.stage!];
    if (!input) continue;
    const [stream, subject] = input(labels.partition!);
    const end =
      subject === ""
        ? (await jsm.streams.info(stream)).state.last_seq
        : await jsm.streams
            .getMessage(stream, { last_by_subj: subject })
            .then((m) => m.seq)
            .catch(() => 0);
    if (value < end) behind++;
  }
  return behind;
}
