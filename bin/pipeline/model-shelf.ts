import type { ModelShelf } from "../../actors/stages/index.js";
import type { StateDb } from "../../state/index.js";

/** The shelf's entry in the state store: an instance of its own, not a stage's. */
export const SHELF_INSTANCE = { stage: "collaborative-model", partition: 0 } as const;
const MODELS = "served";

/**
 * The collaborative trainer's served models kept apart from its snapshot
 * (actors/stages/collaborative-trainer.ts ModelShelf), in the state store beside the stages'
 * snapshots: read whole at open (a model per kind, ~1.4 MB each with 1M users' items), written in
 * the background after each training, one write at a time. A write that fails is logged and made
 * again with the next model: the trainer's snapshot holds its models too, the shelf only lets a
 * restart serve them sooner.
 */
export async function openModelShelf(
  stateDb: StateDb,
  log?: (obj: object, msg: string) => void,
): Promise<ModelShelf & { settled(): Promise<void> }> {
  const store = stateDb.instance(SHELF_INSTANCE.stage, SHELF_INSTANCE.partition);
  let state = await store.load();
  const latest = new Map<string, Uint8Array>();
  for (const [kind, bytes] of state.map<Uint8Array>(MODELS).entries()) latest.set(kind, bytes);
  let writing: Promise<void> | undefined;
  let again = false;
  let failed = false;
  const write = async () => {
    do {
      again = false;
      // After a failed commit the store's bookkeeping is reloaded before the next capture.
      if (failed) {
        state = await store.load();
        for (const [kind, bytes] of latest) state.map<Uint8Array>(MODELS).set(kind, bytes);
        failed = false;
      }
      await store.capture(state).commit();
    } while (again);
  };
  return {
    get: (kind) => latest.get(kind),
    put(kind, stored) {
      latest.set(kind, stored);
      state.map<Uint8Array>(MODELS).set(kind, stored);
      if (writing) {
        again = true;
        return;
      }
      writing = write()
        .catch((err: unknown) => {
          failed = true;
          log?.(
            { err: String(err) },
            "the served models could not be kept apart: kept at the next training",
          );
        })
        .finally(() => (writing = undefined));
    },
    settled: async () => {
      while (writing) await writing;
    },
  };
}
