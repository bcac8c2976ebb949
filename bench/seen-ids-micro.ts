/**
 * Parse's dedupe memory (actors/stages/seen-ids.ts) at a restart: `npx tsx bench/seen-ids-micro.ts [ids]
 * [every] [runs]`. Adds `ids` ids (1M by default), snapshotting parse's state to a temporary
 * LevelDB store every `every` ids (20,000: SNAPSHOT_EVERY's default), as parse does while it
 * ingests. Then, `runs` times (3), min reported: (1) createSeenIds over the live map (the load
 * loop alone), (2) the store's load of the snapshot, (3) createSeenIds over the loaded map. CPU
 * ms of the whole process (GC and LevelDB's threads included).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStageState, openStateDb } from "../state/store.js";
import { createSeenIds } from "../actors/stages/index.js";

const IDS = Number(process.argv[2] ?? 1_000_000);
const EVERY = Number(process.argv[3] ?? 20_000);
const RUNS = Number(process.argv[4] ?? 3);
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

const dir = await mkdtemp(join(tmpdir(), "reco-seen-micro-"));
const db = await openStateDb(dir);
try {
  const store = db.instance("parse", 0);
  const state = createStageState();
  const seen = createSeenIds(state.map("seen"), 2 * IDS);
  for (let k = 0; k < IDS; k++) {
    seen.add(`00000000-0000-4000-8000-${k.toString(16).padStart(12, "0")}`, 1_000 + k);
    if ((k + 1) % EVERY === 0) await store.write(state);
  }
  await store.write(state);

  const min = { live: Infinity, load: Infinity, loaded: Infinity };
  for (let r = 0; r < RUNS; r++) {
    gc();
    let t = cpu();
    const again = createSeenIds(state.map("seen"), 2 * IDS);
    min.live = Math.min(min.live, cpu() - t);
    if (again.size !== IDS) throw new Error(`live: ${again.size} ids`);

    gc();
    t = cpu();
    const loaded = await store.load();
    min.load = Math.min(min.load, cpu() - t);
    gc();
    t = cpu();
    const back = createSeenIds(loaded.map("seen"), 2 * IDS);
    min.loaded = Math.min(min.loaded, cpu() - t);
    if (back.size !== IDS) throw new Error(`loaded: ${back.size} ids`);
  }
  console.log(
    `${IDS} ids, a snapshot every ${EVERY}, min of ${RUNS} (CPU ms): createSeenIds over the ` +
      `live map ${min.live.toFixed(0)}, store load ${min.load.toFixed(0)}, createSeenIds over ` +
      `the loaded map ${min.loaded.toFixed(0)}`,
  );
} finally {
  await db.close();
  await rm(dir, { recursive: true, force: true });
}
