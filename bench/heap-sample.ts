import { writeFile } from "node:fs/promises";
import { Session } from "node:inspector/promises";

/**
 * Where the main isolate's allocations come from: V8's sampling heap profiler through the
 * inspector, counting objects that garbage collections have freed too (without those flags the
 * profile holds only what is still alive when it stops, which says little about allocation
 * rate). The profile is written as `--heap-prof` writes one; `npx tsx bench/profile-summary.ts
 * FILE.heapprofile` lists bytes allocated by function and file. Without `youngDeaths` the
 * objects a scavenge freed are left out: what remains was promoted to the old generation (and
 * either died there or is still alive), the allocations that make full GCs come sooner.
 */
export async function sampleHeap(
  file: string,
  intervalBytes = 16_384,
  { youngDeaths = true }: { youngDeaths?: boolean } = {},
): Promise<{ stop(): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post("HeapProfiler.enable");
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: youngDeaths,
  });
  return {
    async stop() {
      const { profile } = await session.post("HeapProfiler.stopSampling");
      await writeFile(file, JSON.stringify(profile));
      await session.post("HeapProfiler.disable");
      session.disconnect();
    },
  };
}
