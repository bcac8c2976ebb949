import type { StageHandler, StageSpec } from "../../actors/host/index.js";
import { chainSpec } from "../../actors/host/index.js";

/**
 * The physical plan of a path of stages (DESIGN §3, STYLE "A chain, as we want to read it"): a
 * stage that reads what the stage before it writes joins that stage's chain when the rule allows,
 * like Flink chaining a forward edge of equal parallelism. Anything else keeps its JetStream
 * subject in between.
 */

export interface ChainRule {
  /** CHAINING=on. */
  chaining: boolean;
  /** Whether this process runs the stage (PARSE_PROCESS_STAGES places some elsewhere). */
  placedHere(stage: string): boolean;
  /** Whether readers outside the path (serving replicas, other processes) read this subject. */
  published(subject: string): boolean;
  /**
   * The stage's start tier (units.ts startTierOfStage): a chain starts, and loads its snapshot,
   * as one, so a stage that answers must not wait for the others' state at a restart. Absent:
   * one tier for all.
   */
  tierOf?(stage: string): string;
}

/**
 * Whether `b`, reading what `a` writes, runs in `a`'s chain: the same partition of the same
 * partitioning (a path keeps its partitioning: a repartition ends it), the same process, the
 * same start tier (like Flink's startNewChain() before the operator serving reads), hop input,
 * and the host's plain per-input batching and no ticks on both sides (a member has no batching
 * or timers of its own: the chain's are the first member's).
 */
export function chainable(
  a: StageSpec<StageHandler>,
  b: StageSpec<StageHandler>,
  rule: ChainRule,
): boolean {
  return (
    rule.chaining &&
    rule.placedHere(a.stage) &&
    rule.placedHere(b.stage) &&
    a.partition === b.partition &&
    a.stream === b.stream &&
    b.input === "envelope" &&
    a.batching === "per-input" &&
    b.batching === "per-input" &&
    a.tickMs === undefined &&
    b.tickMs === undefined &&
    (rule.tierOf === undefined || rule.tierOf(a.stage) === rule.tierOf(b.stage))
  );
}

/**
 * The specs to run for `path` (stages in order, each reading its predecessor's output subject):
 * maximal runs of chainable neighbours become one chain spec each, the rest run as they are.
 */
export function planPath(
  path: readonly StageSpec<StageHandler>[],
  rule: ChainRule,
): StageSpec<StageHandler>[] {
  const plan: StageSpec<StageHandler>[] = [];
  let run: StageSpec<StageHandler>[] = [];
  const close = () => {
    if (run.length === 1) plan.push(run[0]!);
    else if (run.length > 1) plan.push(chainSpec(run, { published: rule.published }));
    run = [];
  };
  for (const spec of path) {
    const last = run[run.length - 1];
    if (last !== undefined && !chainable(last, spec, rule)) close();
    run.push(spec);
  }
  close();
  return plan;
}
