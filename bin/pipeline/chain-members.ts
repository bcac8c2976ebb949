import type { StageHandler, StageInstance } from "../../actors/host/index.js";
import { memberCounts, type ChainHandler } from "../../actors/host/index.js";

/**
 * A chain member as callers that ask for one stage see it (`Pipeline.instance("window/3")`,
 * tests): the chain's actor, position and progress, the member's handler and its own counts.
 * Its state is the chain's (counted once, under the chain).
 */
export function memberInstance(
  chain: StageInstance<StageHandler>,
  stage: string,
): StageInstance<StageHandler> {
  const chainStage = chain.actor.id.slice(0, chain.actor.id.indexOf("/"));
  return {
    actor: chain.actor,
    handler: () => (chain.handler() as ChainHandler | undefined)?.member(stage),
    position: () => chain.position(),
    restoredPosition: () => chain.restoredPosition(),
    snapshotPosition: () => chain.snapshotPosition(),
    progress: () => chain.progress(),
    stats: () => memberCounts(chainStage, chain.stats()).get(stage) ?? {},
    stateKeys: () => 0,
    stateColdBytes: () => 0,
    stopInput: () => chain.stopInput(),
    snapshotNow: () => chain.snapshotNow(),
  };
}
