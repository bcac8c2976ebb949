import type { NatsConnection } from "nats";
import { createRecoClient } from "../../connectors/grpc/index.js";
import { gauges, stagesBehind } from "./positions.js";
import { sleep } from "./harness.js";
import { kvEntries } from "./nats.js";
import type { AppProcess } from "./app-process.js";

/**
 * What a run of `reco start` leaves once it has caught up, in a form two runs can be compared
 * by (late-kill, chaining): every user's answer, the popularity bucket, trending finals and
 * heartbeats, the counts kept in the snapshots, and reco.late.
 */

/** Every stage has processed the last message of its input, and no position moved for 2 s. */
export async function waitQuiescent(nc: NatsConnection, app: AppProcess): Promise<void> {
  let stableSince = 0;
  let last = "";
  const until = Date.now() + 180_000;
  while (Date.now() < until) {
    await sleep(250);
    try {
      const jsm = await nc.jetstreamManager();
      const positions = await gauges(app.metricsPort, "reco_stage_position");
      const behind =
        (positions.some((g) => g.labels.stage === "parse") ? 0 : 1) +
        (await stagesBehind(jsm, positions));
      const now = JSON.stringify(positions);
      if (behind === 0 && now === last) {
        if (stableSince === 0) stableSince = Date.now();
        else if (Date.now() - stableSince > 2000) return;
      } else stableSince = 0;
      last = now;
    } catch {
      stableSince = 0; // the server or the app is (re)starting
    }
  }
  throw new Error(`the pipeline did not catch up:\n${app.output().slice(-3000)}`);
}

export interface Results {
  answers: Record<string, string>;
  popularity: Record<string, string>;
  trending: Record<string, string>;
  counts: Record<string, number>;
}

async function bucket(nc: NatsConnection, name: string) {
  const out: Record<string, string> = {};
  for (const [k, e] of await kvEntries(nc, name)) {
    // A row's or a list's `wm` is the progress its stage had when it was put: a batch's, whose
    // bounds follow processing time (in two runs without kills too). Heartbeats ("wm.<p>")
    // carry the final progress, which is the log's.
    const v = e.json<Record<string, unknown>>();
    if (!k.startsWith("wm.")) delete v.wm;
    out[k] = JSON.stringify(v);
  }
  return out;
}

export async function collect(
  nc: NatsConnection,
  app: AppProcess,
  users: string[],
): Promise<Results> {
  const client = createRecoClient(`127.0.0.1:${app.grpcPort}`);
  const answers: Record<string, string> = {};
  for (let i = 0; i < users.length; i += 100) {
    const batch = users.slice(i, i + 100);
    const got = await Promise.all(batch.map((u) => client.getRecommendations(u, 10)));
    got.forEach((a, k) => {
      answers[batch[k]!] = JSON.stringify([
        a.items.map((x) => [x.itemId, x.score.toFixed(9), x.source]),
        a.topCategories.map((c) => [c.category, Number(c.interest)]),
        a.watermark ? [String(a.watermark.seconds), a.watermark.nanos] : null,
      ]);
    });
  }
  client.close();
  const trending: Record<string, string> = {};
  for (const [k, v] of Object.entries(await bucket(nc, "reco_trending"))) {
    // Non-final lists are processing-time pushes (docs/FAILURES.md): their timing is not the log's.
    const part = JSON.parse(v) as { final?: boolean };
    if (k.startsWith("wm.") || part.final === true) trending[k] = v;
  }
  const counts: Record<string, number> = {};
  for (const { labels, value } of await gauges(app.metricsPort, "reco_stage_count")) {
    const k = `${labels.stage}:${labels.name}`;
    counts[k] = (counts[k] ?? 0) + value;
  }
  return { answers, popularity: await bucket(nc, "reco_popularity"), trending, counts };
}

/** Messages of RECO_LATE as "<reason> <event id> <watermark>", sorted. */
export async function lateMessages(nc: NatsConnection): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info("RECO_LATE");
  const out: string[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const m = await jsm.streams.getMessage("RECO_LATE", { seq }).catch(() => undefined);
    if (!m) continue;
    const body = m.json<{ event: { id: string } }>();
    out.push(`${m.header.get("Reco-Reason")} ${body.event.id} ${m.header.get("Reco-Watermark")}`);
  }
  return out.sort();
}

/** Entries of `b` that differ from `a`'s (a few, for the failure message) and how many. */
export function differences(a: Record<string, unknown>, b: Record<string, unknown>) {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  const diff = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  return { count: diff.length, first: diff.slice(0, 3).map((k) => [k, a[k], b[k]]) };
}
