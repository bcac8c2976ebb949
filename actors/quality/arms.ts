import { partitionOf } from "../contract/index.js";
import type { BlendSettings, BlendWeights } from "../sources/index.js";
import { SOURCE_NAMES, type SourceName } from "../sources/index.js";

/**
 * A/B arms (DESIGN §7): users split by a stable hash of their id into named arms, each with its
 * ranker settings. The split is FNV-1a over "arm:" + the user id (salted, so it does not follow
 * the partitioning), into 10,000 slots given out by share: a user stays in their arm across
 * restarts, processes and versions while the ARMS setting stays the same.
 *
 * ARMS is a JSON array, e.g.
 *   [{"name":"design","share":50,"ranker":"design"},{"name":"blend","share":50,"ranker":"blend"}]
 * `share` is relative (any positive numbers); `blend` (optional, ranker blend) overrides the
 * preset's blend: {"mode":"score"|"rank","weights":{"HISTORY":4,...},"rrfK":60}.
 */
export interface Arm {
  name: string;
  share: number;
  ranker: "blend" | "design";
  /** The blend's settings for this arm; absent: the preset's. */
  blend?: BlendSettings;
}

export interface Arms {
  readonly arms: readonly Arm[];
  /** The user's arm. */
  armOf(user: string): Arm;
}

const SLOTS = 10_000;

export function createArms(arms: readonly Arm[]): Arms {
  const total = arms.reduce((s, a) => s + a.share, 0);
  let acc = 0;
  const bounds = arms.map((a) => (acc += (a.share / total) * SLOTS));
  return {
    arms,
    armOf(user) {
      const slot = partitionOf(`arm:${user}`, SLOTS);
      const x = bounds.findIndex((b) => slot < b);
      return arms[x < 0 ? arms.length - 1 : x]!;
    },
  };
}

/**
 * Reads the ARMS setting; throws an Error whose message says what is wrong, naming the arm and
 * its field (bin/config.ts prefixes the setting).
 */
export function parseArms(text: string): Arm[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new Error(
      'expected a JSON array of arms, e.g. [{"name":"a","share":50,"ranker":"design"},{"name":"b","share":50,"ranker":"blend"}]',
    );
  }
  if (!Array.isArray(v) || v.length < 1)
    throw new Error("expected a JSON array of at least one arm");
  const names = new Set<string>();
  return v.map((a: unknown, x): Arm => {
    const where = `arm ${x + 1}`;
    if (typeof a !== "object" || a === null) throw new Error(`${where}: expected an object`);
    const o = a as Record<string, unknown>;
    for (const k of Object.keys(o))
      if (!["name", "share", "ranker", "blend"].includes(k))
        throw new Error(
          `${where}: unknown field ${JSON.stringify(k)} (name, share, ranker, blend)`,
        );
    if (typeof o.name !== "string" || !/^[A-Za-z0-9_.-]{1,32}$/.test(o.name))
      throw new Error(`${where}: name must be 1-32 letters, digits, '_', '.' or '-'`);
    if (names.has(o.name)) throw new Error(`${where}: name ${JSON.stringify(o.name)} is taken`);
    names.add(o.name);
    const at = `arm ${JSON.stringify(o.name)}`;
    if (typeof o.share !== "number" || !(o.share > 0) || !Number.isFinite(o.share))
      throw new Error(`${at}: share must be a number > 0, got ${JSON.stringify(o.share)}`);
    if (o.ranker !== "blend" && o.ranker !== "design")
      throw new Error(`${at}: ranker must be "blend" or "design", got ${JSON.stringify(o.ranker)}`);
    const arm: Arm = { name: o.name, share: o.share, ranker: o.ranker };
    if (o.blend !== undefined) {
      if (o.ranker !== "blend") throw new Error(`${at}: blend settings need ranker "blend"`);
      arm.blend = blendOf(at, o.blend);
    }
    return arm;
  });
}

function blendOf(at: string, b: unknown): BlendSettings {
  if (typeof b !== "object" || b === null) throw new Error(`${at}: blend must be an object`);
  const o = b as Record<string, unknown>;
  if (o.mode !== "score" && o.mode !== "rank")
    throw new Error(`${at}: blend.mode must be "score" or "rank", got ${JSON.stringify(o.mode)}`);
  if (typeof o.weights !== "object" || o.weights === null)
    throw new Error(`${at}: blend.weights must be an object of source weights`);
  const weights: BlendWeights = {};
  for (const [k, w] of Object.entries(o.weights)) {
    if (!SOURCE_NAMES.includes(k as SourceName))
      throw new Error(
        `${at}: blend.weights: unknown source ${JSON.stringify(k)} (${SOURCE_NAMES.join(", ")})`,
      );
    if (typeof w !== "number" || !(w >= 0))
      throw new Error(`${at}: blend.weights.${k} must be a number >= 0`);
    weights[k as SourceName] = w;
  }
  const out: BlendSettings = { mode: o.mode, weights };
  if (o.rrfK !== undefined) {
    if (typeof o.rrfK !== "number" || !(o.rrfK >= 0))
      throw new Error(`${at}: blend.rrfK must be a number >= 0`);
    out.rrfK = o.rrfK;
  }
  return out;
}
