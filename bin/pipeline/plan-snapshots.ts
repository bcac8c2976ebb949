import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { StateDb } from "../../state/index.js";
import {
  cutSnapshot,
  isEmptySnapshot,
  joinable,
  joinSnapshots,
  membersOfStage,
  type PlainSnapshot,
} from "../../actors/host/index.js";

/**
 * The user path's stages in order (bin/pipeline/stages.ts wires them so), and the subject each
 * one writes for the next.
 */
export const USER_PATH = ["watermark", "window", "interest-ranking", "popularity-join"] as const;
const outputOf = (stage: string, p: number) => `reco.${stage}.${p}`;

/**
 * The instances the user path runs as, in order: runs of stages placed in the same process
 * (`placeOf`) and of one start tier (`tierOf`), one chain each with CHAINING=on, one instance a
 * stage without (chains.ts planPath gives the same on the specs: the user path's stages all
 * chain where placed together and started together).
 */
export function userPathInstances(
  chaining: boolean,
  placeOf: (stage: string) => string,
  tierOf: (stage: string) => string = () => "",
): { stage: string; place: string }[] {
  const out: { stage: string; place: string }[] = [];
  let run: string[] = [];
  const close = () => {
    if (run.length > 0) out.push({ stage: run.join("+"), place: placeOf(run[0]!) });
    run = [];
  };
  for (const stage of USER_PATH) {
    const last = run[run.length - 1];
    if (
      last !== undefined &&
      (!chaining || placeOf(last) !== placeOf(stage) || tierOf(last) !== tierOf(stage))
    )
      close();
    run.push(stage);
  }
  close();
  return out;
}

/** The file that names the user path's instances of the last start (JSON array). */
export const userPathPlanFile = (dataDir: string) => join(dataDir, "state.user-path.json");

/**
 * Carries the user path's snapshots in `db` over to this start's instances (`wanted`, in path
 * order) from the last start's (the file above; absent: one instance per stage, as before chains
 * existed), the way Flink maps a savepoint's operator state onto a new chaining: a chain that is
 * cut (its stages placed in two processes) gives each side its members' state; instances that
 * come together (a chain again, or CHAINING=on after off) are joined into one snapshot when each
 * has processed exactly what the one before it wrote (host-chain.ts joinable). When they have not
 * (a process stopped before its downstream caught up), the new chain starts empty and replays its
 * input from the start: slower, still exact. Snapshots of the old instances are then removed, so
 * a later plan never restores them at a stale position.
 */
export async function carrySnapshotsOver(
  db: StateDb,
  dataDir: string,
  wanted: readonly string[],
  partitions: number,
  log?: (obj: object, msg: string) => void,
): Promise<void> {
  const before = await userPathBefore(dataDir);
  if (before.join(",") !== wanted.join(","))
    for (let p = 0; p < partitions; p++) await carryPartition(db, before, wanted, p, log);
  await writeFile(userPathPlanFile(dataDir), JSON.stringify(wanted));
}

/** The user path's instances of the last start. */
export async function userPathBefore(dataDir: string): Promise<string[]> {
  const file = userPathPlanFile(dataDir);
  return existsSync(file) ? (JSON.parse(await readFile(file, "utf8")) as string[]) : [...USER_PATH];
}

async function carryPartition(
  db: StateDb,
  before: readonly string[],
  wanted: readonly string[],
  p: number,
  log?: (obj: object, msg: string) => void,
): Promise<void> {
  const held: [string, PlainSnapshot][] = [];
  for (const stage of before) held.push([stage, await db.instance(stage, p).exportRaw()]);
  if (held.every(([, snap]) => isEmptySnapshot(snap))) return;
  // Cut every held instance into single stages where a wanted one starts, then join the pieces
  // of each wanted instance.
  const starts = new Set(wanted.map((w) => membersOfStage(w)[0]!));
  const pieces: [string, PlainSnapshot][] = [];
  for (const [stage, snap] of held) {
    let rest: [string, PlainSnapshot] = [stage, snap];
    for (;;) {
      const members = membersOfStage(rest[0]);
      const at = members.findIndex((m, k) => k > 0 && starts.has(m));
      if (at < 0) break;
      const { head, tail } = cutSnapshot(rest[0], rest[1], at);
      pieces.push(head);
      rest = tail;
    }
    pieces.push(rest);
  }
  const made: [string, PlainSnapshot][] = [];
  for (const want of wanted) {
    const members = membersOfStage(want);
    const group = pieces.filter(([s]) => members.includes(membersOfStage(s)[0]!));
    // Consecutive pieces: each must have processed exactly what the one before it wrote.
    const ok = group.every((piece, k) => {
      const before = group[k - 1];
      if (before === undefined) return true;
      const boundary = outputOf(membersOfStage(before[0]).at(-1)!, p);
      return joinable(before[1], piece[1], boundary);
    });
    if (!ok) {
      log?.(
        { instance: `${want}/${p}`, from: group.map(([s]) => s) },
        "snapshots not carried over to the new plan: a downstream stage had not processed all its input; the instance replays its input",
      );
      continue;
    }
    made.push(group.length === 1 ? group[0]! : joinSnapshots(group));
  }
  for (const stage of before) await db.instance(stage, p).clear();
  for (const [stage, snap] of made) {
    if (!wanted.includes(stage))
      throw new Error(`user path instance ${stage} is not one of ${wanted.join(", ")}`);
    if (!isEmptySnapshot(snap)) await db.instance(stage, p).importRaw(snap);
  }
}
