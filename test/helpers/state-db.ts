import { afterEach } from "vitest";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStateDb, type StateDb, type StateDbOptions } from "../../state/index.js";

/**
 * A LevelDB state directory per test of the calling `describe`: `open` makes the directory on
 * its first call in a test and opens the store in it, closing the one opened before (a restart
 * on the same files); after each test the store is closed and the directory removed.
 */
export function testStateDb(prefix: string): {
  open(options?: StateDbOptions): Promise<StateDb>;
  /** Closes the store (to read its LevelDB directly), returning its directory. */
  close(): Promise<string>;
} {
  let dir: string | undefined;
  let db: StateDb | undefined;
  afterEach(async () => {
    await db?.close();
    db = undefined;
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });
  return {
    async open(options) {
      dir ??= await mkdtemp(join(tmpdir(), prefix));
      await db?.close();
      db = await openStateDb(dir, options);
      return db;
    },
    async close() {
      await db?.close();
      db = undefined;
      if (!dir) throw new Error("testStateDb: close() before open()");
      return dir;
    },
  };
}
