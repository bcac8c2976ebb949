/** The state store's failures: corrupt, not openable, not writable; each says the way out. */

/** How to get out of a broken state store: one sentence, with the path. */
const wayOut = (path: string) =>
  `stop reco-stream, delete ${path} (the stages' state there is rebuilt from the streams, as far back as they keep messages) and start again`;

/**
 * The state store is corrupt (a LevelDB table, log or manifest that cannot be read): the stages
 * that live in it cannot load or write their snapshots, and retrying will not change that.
 * Names the directory and the way out; the process exits on it rather than retry forever.
 */
export class StateStoreCorruptError extends Error {
  override readonly name = "StateStoreCorruptError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`the state store ${path} is corrupt (${causeText(cause)}): ${wayOut(path)}`, { cause });
  }
}

/** The state store could not be opened for another reason than a lock held by another process. */
export class StateStoreOpenError extends Error {
  override readonly name = "StateStoreOpenError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(
      `cannot open the state store ${path} (${causeText(cause)}); if it is damaged, ${wayOut(path)}`,
      { cause },
    );
  }
}

/** A snapshot could not be written (disk full, I/O error): the stage retries from its last one. */
export class StateStoreWriteError extends Error {
  override readonly name = "StateStoreWriteError";
  constructor(
    readonly path: string,
    cause: unknown,
  ) {
    super(`cannot write to the state store ${path}: ${causeText(cause)}`, { cause });
  }
}

/** The innermost messages of an error chain ("Database failed to open" hides the reason). */
function causeText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err; e !== undefined && e !== null; e = (e as { cause?: unknown }).cause) {
    parts.push(e instanceof Error ? e.message : String(e));
    if (!(e instanceof Error)) break;
  }
  return parts.slice(-1)[0] ?? "unknown error";
}

function levelCode(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

/** LevelDB found damage: its own code, or "Corruption: ..." from the C++ status anywhere in the chain. */
function isCorruption(err: unknown): boolean {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (levelCode(e) === "LEVEL_CORRUPTION" || /^Corruption:/.test(e.message)) return true;
  }
  return false;
}

/**
 * Why opening failed, as one of our errors. A `CURRENT` that names a manifest that is not there
 * (overwritten or truncated) is damage too, reported by LevelDB as an I/O error on that file.
 */
export function openFailure(path: string, err: unknown): unknown {
  if (levelCode(err) === "LEVEL_LOCKED" || levelCode((err as Error).cause) === "LEVEL_LOCKED")
    return err;
  const text = causeText(err);
  const missingInside = text.includes(path) && /No such file or directory/.test(text);
  if (isCorruption(err) || missingInside) return new StateStoreCorruptError(path, err);
  return new StateStoreOpenError(path, err);
}

/** Reads and writes fail with our errors, naming the store; a corrupt one says the way out. */
export function storeFailure(path: string, err: unknown, writing: boolean): unknown {
  if (isCorruption(err)) return new StateStoreCorruptError(path, err);
  return writing ? new StateStoreWriteError(path, err) : err;
}
