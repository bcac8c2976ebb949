import { openStateDb } from "../../state/index.js";

/**
 * A child process for test/state-raw-values.test.ts: snapshot after snapshot of one instance, a
 * new large byte value (a model) each time beside a counter, until it SIGKILLs itself while its
 * `killAt`-th snapshot batch is being written (as bin/test-faults.ts does to the app).
 * Usage: node --import tsx raw-kill-writer.ts <dir> <killAt> <plain|full> (which checkpoints
 * come every few snapshots).
 */
export const modelOf = (i: number): Uint8Array => {
  const b = new Uint8Array(100_000 + i * 8);
  for (let j = 0; j < b.length; j++) b[j] = (i * 31 + j * 7) & 255;
  return b;
};

if (process.argv[1]?.endsWith("raw-kill-writer.ts")) {
  const [dir, at, mode] = process.argv.slice(2);
  const killAt = Number(at);
  let writes = 0;
  const db = await openStateDb(dir!, {
    // Small thresholds: plain or full checkpoints come every few snapshots.
    plainCheckpointMinKeys: mode === "plain" ? 3 : 1e6,
    checkpointMinKeys: mode === "plain" ? 1e6 : 4,
    onSnapshotWrite: () => {
      if (++writes === killAt) process.kill(process.pid, "SIGKILL");
    },
  });
  const store = db.instance("collaborative", 0);
  const state = await store.load();
  for (let i = 1; i <= killAt + 5; i++) {
    state.map("model").set("implicit", modelOf(i));
    state.map("points").set("t", i);
    state.map("items").set(`i${i % 3}`, i);
    if (i % 3 === 0) state.map("items").delete(`i${(i + 1) % 3}`);
    await store.write(state);
  }
  await db.close();
}
