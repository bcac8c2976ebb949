import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openStateDb, type StateDb, type StateDbOptions } from "../state/index.js";

/**
 * The parse process's state store (`state-parse`, beside the main process's `state`: LevelDB
 * allows one process per directory) and the moves of stage snapshots between the two.
 */

/** Directory of the child's LevelDB, beside the main process's `state`. */
export const parseStateDir = (dataDir: string) => join(dataDir, "state-parse");

/**
 * The file beside `state-parse` that lists the stages whose snapshots that store holds (JSON
 * array). Absent: parse's only (a store from before the parse process ran other stages).
 */
export const parseStagesFile = (dataDir: string) => join(dataDir, "state-parse.stages.json");

/** The instances of `stages` (parse has one, the others one per partition). */
function instancesOf(stages: Iterable<string>, partitions: number) {
  const ids: { stage: string; partition: number }[] = [];
  for (const stage of stages)
    for (let partition = 0; partition < (stage === "parse" ? 1 : partitions); partition++)
      ids.push({ stage, partition });
  return ids;
}

/**
 * Moves stage snapshots between the two stores, so that each stage's is where this start runs
 * it (`inChild`: the stages of the parse process, empty when there is none) and switching
 * PARSE_PROCESS or PARSE_PROCESS_STAGES replays nothing: into `state-parse` what the child runs
 * now, back into `state` what it ran before and runs no more. Only one of the two ever holds an
 * instance's live snapshot. `state-parse.stages.json` lists the stages `state-parse` holds (a
 * store without it holds parse's only): when it lists exactly `inChild`, a start reads nothing
 * else. Each instance is copied, then cleared where it was, and the list written last, so a crash
 * midway copies again at the next start (neither process ran the moved stages meanwhile).
 */
export async function moveParseSnapshot(
  stateDb: StateDb,
  dataDir: string,
  inChild: ReadonlySet<string>,
  partitions: number,
  opts: {
    /** Instances that come back into `stateDb` whatever their place (their plan changed). */
    bringBack?: (stage: string) => boolean;
    /** Runs once they are all in `stateDb`, before any moves into `state-parse`. */
    whileHere?: () => Promise<void>;
  } = {},
): Promise<void> {
  const bringBack = opts.bringBack ?? (() => false);
  const dir = parseStateDir(dataDir);
  const listFile = parseStagesFile(dataDir);
  const want = [...inChild].sort();
  const held = existsSync(listFile)
    ? (JSON.parse(await readFile(listFile, "utf8")) as string[])
    : existsSync(dir)
      ? ["parse"]
      : [];
  const moveOut = held.filter((s) => !inChild.has(s) || bringBack(s));
  const moveIn = want.filter((s) => !held.includes(s) || bringBack(s));
  if (moveOut.length > 0 && existsSync(dir)) {
    const db = await openUnlocked(dir);
    try {
      for (const id of instancesOf(moveOut, partitions)) {
        const from = db.instance(id.stage, id.partition);
        const snap = await from.exportRaw();
        if (Number(snap.meta.seq ?? 0) <= 0) continue;
        await stateDb.instance(id.stage, id.partition).importRaw(snap);
        await from.clear();
      }
    } finally {
      await db.close();
    }
  }
  await opts.whileHere?.();
  if (moveIn.length === 0 && moveOut.length === 0) return;
  if (want.length === 0) {
    await rm(dir, { recursive: true, force: true });
    await rm(listFile, { force: true });
    return;
  }
  // A first store is written beside and renamed: a crash midway leaves no half-filled one.
  const fresh = !existsSync(dir);
  const target = fresh ? `${dir}.tmp` : dir;
  let db: StateDb | undefined;
  const moved: { stage: string; partition: number }[] = [];
  try {
    // One at a time: a window or interest-ranking snapshot of 1M users is large.
    for (const id of instancesOf(moveIn, partitions)) {
      const snap = await stateDb.instance(id.stage, id.partition).exportRaw();
      if (Number(snap.meta.seq ?? 0) <= 0) continue;
      if (!db) {
        if (fresh) await rm(target, { recursive: true, force: true });
        db = await openUnlocked(target);
      }
      await db.instance(id.stage, id.partition).importRaw(snap);
      moved.push(id);
    }
  } finally {
    await db?.close();
  }
  if (db && fresh) await rename(target, dir);
  for (const id of moved) await stateDb.instance(id.stage, id.partition).clear();
  await writeFile(listFile, JSON.stringify(want));
}

/**
 * Opens a state directory, waiting up to `waitMs` while another process still holds its lock:
 * the child of a main process that was just SIGKILLed exits when it notices, a moment later.
 */
export async function openUnlocked(
  dir: string,
  waitMs = 10_000,
  options: StateDbOptions = {},
): Promise<StateDb> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      return await openStateDb(dir, options);
    } catch (err) {
      if (!isLocked(err) || Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function isLocked(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: string }).code === "LEVEL_LOCKED") return true;
    if (/\block\b/i.test(e.message)) return true;
  }
  return false;
}
