/** What steps 6 and 6b share: the answers compared, the polling of a restarted app, its log. */
import type { JetStreamManager } from "nats";
import type { GetRecommendationsResponse } from "../../proto/gen/reco/v1/reco_pb.js";
import { STREAMS } from "../../connectors/nats/topology.js";
import { peekHead } from "../../actors/host/index.js";
import { subjects } from "../../actors/contract/index.js";
import { createRecoClient } from "../../connectors/grpc/client.js";
import { epochNow, positions, type AppProcess, type LogLine } from "../app-process.js";
import { TARGETS } from "../report.js";
import { sleep } from "../util.js";
import { env } from "../options.js";
import { SETTINGS } from "../../bin/config-settings.js";

export interface RecoveryOptions {
  events: number;
  /** Users the events go to, the same number each (step 6 on its own). */
  users: number;
  partitions: number;
  ingestTimeoutMs: number;
  /** Background events/s of 6b; 0 skips 6b. */
  loadRate: number;
  /**
   * Kill only once a trained ALS model serves and no training runs (BENCH_RECOVERY_WAIT_MODEL=1),
   * so the restart reads a model back: without it step 6 measures whichever mode the training's
   * timing gives (4.60 s with a model of 124k users, 3.07-3.19 s without).
   */
  waitModel?: boolean;
  publishWindow: number;
}

/** The app's SNAPSHOT_INTERVAL in seconds (the bench's environment, else the default). */
export const SNAPSHOT_SECS =
  Number(env.SNAPSHOT_INTERVAL ?? SETTINGS.snapshotIntervalMs.default) / 1000;

/** DESIGN §8: serving again within 3 s of a SIGKILL, with 1M users of state. */
export const TARGET_MS = TARGETS.recoveryMs;
/** One attempt every this many ms while waiting for the restarted app. */
export const POLL_MS = 10;

/** The parts of an answer that must survive a restart unchanged. */
export function content(r: GetRecommendationsResponse): string {
  return JSON.stringify([
    r.items.map((i) => [i.itemId, i.score, i.rank, i.source, String(i.purchases)]),
    r.topCategories.map((c) => [c.category, String(c.interest)]),
  ]);
}

/** The users a restart is checked with: the first, a middle and the last of `users`, one never seen. */
export function probeUsers(users: number): string[] {
  const last = users - 1;
  return [
    ...new Set(["u0", "u1", "u2", "u10", "u100", `u${Math.floor(last / 2)}`, `u${last}`]),
    "bench-never-seen",
  ];
}

/**
 * Asks GetRecommendations until `accept` is true of the answers for every user in `users`, each
 * attempt on a new channel (a grpc-js channel that saw the server die backs off reconnecting for
 * up to seconds, which would be measured instead of the app). Returns the epoch ms of the first
 * OK answer and of the first accepted round.
 */
export async function pollUntil(
  address: string,
  users: string[],
  accept: (answers: GetRecommendationsResponse[]) => boolean,
  timeoutMs: number,
): Promise<{ firstOk: number; accepted: number; attempts: number; lastError: string }> {
  const t0 = epochNow();
  let firstOk = NaN;
  let attempts = 0;
  let lastError = "";
  while (epochNow() - t0 < timeoutMs) {
    attempts++;
    const client = createRecoClient(address, {
      channelOptions: { "grpc.use_local_subchannel_pool": 1 },
    });
    try {
      const answers: GetRecommendationsResponse[] = [];
      for (const u of users) {
        answers.push(await client.getRecommendations(u, 10, { deadlineMs: 2000 }));
        if (Number.isNaN(firstOk)) firstOk = epochNow();
      }
      if (accept(answers)) return { firstOk, accepted: epochNow(), attempts, lastError };
      lastError = "answered, but not the expected content yet";
    } catch (err) {
      lastError = err instanceof Error ? err.message.split("\n")[0]! : String(err);
    } finally {
      client.close();
    }
    await sleep(POLL_MS);
  }
  return { firstOk, accepted: NaN, attempts, lastError };
}

/** Waits until every instance's position is at least what `before` says; epoch ms. */
export async function waitPositions(
  app: AppProcess,
  before: Map<string, number>,
  timeoutMs: number,
) {
  const t0 = epochNow();
  for (;;) {
    const now = await positions(app).catch(() => new Map<string, number>());
    if ([...before].every(([id, pos]) => (now.get(id) ?? -1) >= pos)) return epochNow();
    if (epochNow() - t0 > timeoutMs) return NaN;
    await sleep(20);
  }
}

export const isConfigLine = (l: LogLine) => l.msg === "configuration";
export const isListenLine = (l: LogLine) => l.msg === "gRPC server listening";

/** The highest EVENTS position parse's newest hop of each partition covered (0: none yet). */
export async function parsePublishedUpTo(
  jsm: JetStreamManager,
  partitions: number,
): Promise<number> {
  let upTo = 0;
  for (let p = 0; p < partitions; p++) {
    const m = await jsm.streams
      .getMessage(STREAMS.hops, { last_by_subj: subjects.parse(p) })
      .catch(() => undefined);
    if (m) upTo = Math.max(upTo, peekHead(m.data).upTo);
  }
  return upTo;
}

/**
 * reco_stage_restored_position of a stage's instance 0 (NaN if it does not report one in 60 s:
 * a restart spawns the parse process once the blend's sources run, which under step 6b's load
 * can be more than 10 s after the app answers again).
 */
export async function restoredPosition(app: AppProcess, stage: string): Promise<number> {
  for (const end = Date.now() + 60_000; Date.now() < end; await sleep(200)) {
    const m = await app.metrics().catch(() => []);
    const v = m.find((x) => x.name === "reco_stage_restored_position" && x.labels.stage === stage);
    if (v) return v.value;
  }
  return NaN;
}

/**
 * Where the time from the kill to `answeredAt` went, from the restarted app's log: process start
 * (spawn → first log line, written once its modules are loaded), start-up until gRPC is bound
 * (NATS, LevelDB, the serving instances' snapshots: popularity-join's profiles and the
 * popularity table), then the first right answers. The other stages load after the bind; the
 * "ready" line says when all of them run.
 */
export async function breakdown(app: AppProcess, killedAt: number, answeredAt: number) {
  const config = await app.waitForLog(isConfigLine, 5000).catch(() => undefined);
  const listen = await app.waitForLog(isListenLine, 5000).catch(() => undefined);
  const ready = await app.ready(60_000).catch(() => undefined);
  return {
    spawnMs: app.spawnedAt - killedAt,
    startMs: config ? config.time - app.spawnedAt : NaN,
    bindMs: config && listen ? listen.time - config.time : NaN,
    answerMs: listen ? answeredAt - listen.time : NaN,
    readyMs: ready ? ready.time - killedAt : NaN,
  };
}
export const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
