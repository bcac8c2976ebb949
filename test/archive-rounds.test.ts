import { describe, expect, it } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "nats";
import { ensureEventsStream } from "../connectors/nats/streams.js";
import { SNAPSHOT_BUCKET } from "../state/archive.js";
import {
  ARCHIVE_MAX_PAUSE_INTERVALS,
  ARCHIVE_MAX_SHARE,
  archivePause,
} from "../bin/pipeline/archive-rounds.js";
import { generateLog } from "./helpers/events.js";
import { sleep, useCleanups } from "./helpers/harness.js";
import { setupNats } from "./helpers/nats.js";
import { publish } from "./helpers/reference-runs.js";
import { spawnWorker } from "./helpers/worker.js";

/*
 * A worker copies its snapshots to the object store in rounds (bin/pipeline/archive-rounds.ts):
 * an instance whose input has not moved since its last copy is not uploaded again, and a slow
 * round pushes the next one back instead of overlapping it.
 */

const H = 3_600_000;

describe("archive rounds: the pause after a round", () => {
  it("is the interval while rounds are short, keeps slow rounds to their share of the time, and is bounded", () => {
    // A short round: the next starts the interval after this one began.
    expect(archivePause(30_000, 500)).toBe(29_500);
    // A round of 10 s may take at most ARCHIVE_MAX_SHARE of the time: the next starts 100 s
    // after it began, not 30 s (nor at once, as a round slower than the interval did before).
    expect(archivePause(30_000, 10_000)).toBe(10_000 / ARCHIVE_MAX_SHARE - 10_000);
    // A round of a minute (a saturated worker): the pause is bounded.
    expect(archivePause(30_000, 60_000)).toBe(ARCHIVE_MAX_PAUSE_INTERVALS * 30_000);
    expect(archivePause(1_000, 0)).toBe(1_000);
  });
});

describe("archive rounds in a worker", () => {
  const cleanups = useCleanups();

  /** Each archived object's upload id (a new one per put), by name. */
  async function uploads(nc: NatsConnection): Promise<Map<string, string>> {
    const os = await nc.jetstream().views.os(SNAPSHOT_BUCKET);
    const out = new Map<string, string>();
    for (const info of await os.list()) if (!info.deleted) out.set(info.name, info.nuid);
    return out;
  }

  it("uploads only the instances that took input since their last copy", async () => {
    const nats = await setupNats();
    cleanups.add(() => nats.cleanup());
    const nc = await connect({ servers: nats.url });
    cleanups.add(() => nc.close());
    await ensureEventsStream(await nc.jetstreamManager(), { replicas: 1 });
    const dataDir = await mkdtemp(join(tmpdir(), "reco-archive-rounds-"));
    cleanups.add(() => rm(dataDir, { recursive: true, force: true }));

    const worker = await spawnWorker(
      "w0",
      {
        NATS_URL: nats.url,
        DATA_DIR: dataDir,
        PARTITIONS: "2",
        LEASE_TTL_MS: "3000",
        ARCHIVE_INTERVAL_MS: "1000",
        SNAPSHOT_INTERVAL: "500",
        // No idle markers: with no events, no input position moves.
        IDLE_TIMEOUT_MS: "0",
        RANKER: "design",
      },
      cleanups,
    );

    const log = generateLog({
      seed: 5,
      events: 400,
      users: 40,
      items: 30,
      categories: ["a", "b", "c"],
      start: Date.parse("2026-11-12T00:00:00Z"),
      spanMs: 2 * H,
      lateShare: 0,
      lateByMs: 0,
    });
    await publish(nc, log.slice(0, 300));

    // Once every instance has caught up and been copied, rounds go on every second and upload
    // nothing: the objects stay the same uploads. (Each round used to upload every instance.)
    let last = await uploads(nc);
    let stableSince = Date.now();
    for (const end = Date.now() + 45_000; Date.now() - stableSince < 4_000; await sleep(250)) {
      if (Date.now() > end)
        throw new Error(
          `archived snapshots still re-uploaded after 45 s:\n${worker.output().slice(-2000)}`,
        );
      const now = await uploads(nc);
      const same = now.size === last.size && [...now].every(([k, v]) => last.get(k) === v);
      if (!same || now.size === 0) stableSince = Date.now();
      last = now;
    }
    expect(last.has("parse.0")).toBe(true);
    expect([...last.keys()].some((k) => k.endsWith(".1"))).toBe(true);

    // New events move parse and the stages after it: those are copied again.
    await publish(nc, log.slice(300));
    let moved: string[] = [];
    for (const end = Date.now() + 20_000; Date.now() < end; await sleep(250)) {
      const now = await uploads(nc);
      moved = [...now].filter(([k, v]) => last.get(k) !== v).map(([k]) => k);
      if (moved.includes("parse.0") && moved.length > 1) break;
    }
    expect(moved).toContain("parse.0");
    expect(moved.length).toBeGreaterThan(1);
    expect(worker.output()).not.toMatch(/snapshot upload failed/);
  }, 120_000);
});
