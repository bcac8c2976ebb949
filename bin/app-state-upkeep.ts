import { join } from "node:path";
import { readdir, stat } from "node:fs/promises";
import { Gauge, type Registry } from "prom-client";
import type { Logger } from "pino";
import type { StateDb } from "../state/index.js";

/**
 * State stays bounded on disk too: compact periodically so deleted keys free their space,
 * and report the store's size. Returns what stops the compaction.
 */
export function keepStateBounded(
  dataDir: string,
  stateDb: StateDb,
  registry: Registry,
  log: Logger,
): () => void {
  // Measured at each scrape (at most once a second): a size refreshed every 30 s read 246
  // bytes with 2.7 MB on disk after a replay. The parse process's store counts too.
  let sized = { at: -Infinity, bytes: 0 };
  new Gauge({
    name: "reco_state_bytes",
    help: "Bytes of the LevelDB state stores on disk (DATA_DIR/state and state-parse)",
    registers: [registry],
    async collect() {
      if (Date.now() - sized.at >= 1_000) {
        const dirs = [join(dataDir, "state"), join(dataDir, "state-parse")];
        const sizes = await Promise.all(dirs.map((d) => dirBytes(d)));
        sized = { at: Date.now(), bytes: sizes.reduce((a, b) => a + b, 0) };
      }
      this.set(sized.bytes);
    },
  });
  const compactEvery = 10 * 60_000;
  const compactTimer = setInterval(() => {
    const t0 = Date.now();
    void stateDb.compact().then(
      () => log.debug({ ms: Date.now() - t0 }, "state compacted"),
      (err: unknown) => log.warn({ err: String(err) }, "state compaction failed"),
    );
  }, compactEvery);
  return () => clearInterval(compactTimer);
}

/** Bytes of the files under `dir`; 0 when it does not exist. */
async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await dirBytes(p);
    else total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}
