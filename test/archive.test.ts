import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import { setupNats, type TestNats } from "./helpers/nats.js";
import { downloadTimeoutMs, openSnapshotArchive, seqOf } from "../state/archive.js";

describe("the snapshot archive in a JetStream object store", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  beforeAll(async () => {
    nats = await setupNats();
    nc = await connect({ servers: nats.url });
  });
  afterAll(async () => {
    await nc.close();
    await nats.cleanup();
  });

  it("round-trips a large snapshot and keeps the newest per instance", async () => {
    const archive = await openSnapshotArchive(nc);
    expect(await archive.get("window", 3)).toBeUndefined();
    expect(await archive.about("window", 3)).toBeUndefined();
    const entries: [string, unknown][] = Array.from({ length: 50_000 }, (_, i) => [
      `cell\u0000${i}`,
      [i, `cat${i % 7}`],
    ]);
    await archive.put("window", 3, { meta: { seq: 10, wm: 5 }, entries: entries.slice(0, 10) });
    await archive.put("window", 3, { meta: { seq: 99, wm: 7 }, entries });
    const got = await archive.get("window", 3);
    expect(seqOf(got)).toBe(99);
    // The sequence without the download (a takeover compares it with the local snapshot's).
    const about = await archive.about("window", 3);
    expect(about?.seq).toBe(99);
    // Its compressed size, which bounds the wait for its download: more than the 5 s any
    // answer may take, as much more as the copy is large.
    expect(about?.bytes).toBeGreaterThan(10_000);
    expect(downloadTimeoutMs(about!.bytes)).toBeGreaterThan(5_000);
    expect(downloadTimeoutMs(200_000_000)).toBe(45_000);
    expect(got?.entries).toHaveLength(50_000);
    expect(got?.entries[12_345]).toEqual(["cell\u000012345", [12_345, "cat4"]]);
    // Another instance is separate; a second archive handle (another machine) sees the same.
    expect(await archive.get("window", 4)).toBeUndefined();
    const other = await openSnapshotArchive(nc);
    expect(seqOf(await other.get("window", 3))).toBe(99);
  });
});
