import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { NatsConnection } from "nats";
import { formatSummary, replayFile } from "../bin/replay/run.js";
import { connectNats } from "../connectors/nats/connection.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/**
 * A bad row is reported with its line number and counted, and the tool
 * carries on. Regressions: a JSONL event_id holding CR/LF (it becomes the Nats-Msg-Id header) and
 * a row larger than the server's max_payload made the publish throw and ended the whole replay.
 */

function sink(): { stream: Writable; text: () => string } {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { stream, text: () => text };
}

describe("reco replay with hostile rows", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let dir: string;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "replay-hostile-rows" });
    dir = await mkdtemp(join(tmpdir(), "reco-replay5-"));
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("rejects an id with a line break and a row over max_payload by line number, and carries on", async () => {
    const max = nc.info!.max_payload;
    const lines = [
      '{"event_id":"ok-1","event_type":"view","user_id":"u"}',
      '{"event_id":"bad\\r\\nNats-Rollup: all","event_type":"view"}',
      `{"event_id":"ok-big","event_type":"view","pad":"${"y".repeat(max)}"}`,
      '{"event_id":"tab\\tid","event_type":"click"}',
      "not json at all",
      '{"event_id":"ok-2","event_type":"click","user_id":"u"}',
    ];
    const file = join(dir, "hostile.jsonl");
    await writeFile(file, lines.join("\n"));
    const err = sink();

    const s = await replayFile({ file, nc, stderr: err.stream });

    expect(s).toMatchObject({ format: "jsonl", sent: 2, rejected: 4 });
    expect(s.rejections.map((r) => r.line)).toEqual([2, 3, 4, 5]);
    expect(s.rejections[0]!.reason).toMatch(/^bad event_id "bad\\r\\nNats-Rollup/);
    expect(s.rejections[1]!.reason).toMatch(
      new RegExp(`^event of \\d+ bytes does not fit the server's max_payload \\(${max} bytes\\)$`),
    );
    expect(s.rejections[2]!.reason).toMatch(/^bad event_id/);
    expect(s.rejections[3]!.reason).toMatch(/^bad JSON: /);
    expect(err.text().split("\n").filter(Boolean)).toHaveLength(4);
    expect(err.text()).toMatch(/^line 2: bad event_id/);
    expect(formatSummary(s)).toMatch(
      /^read 6 rows: sent 2 events in event-time order \(sorted in memory\) \(0 already in the stream\), rejected 4 rows, in /,
    );

    const info = await (await nc.jetstreamManager()).streams.info(EVENTS_STREAM);
    expect(info.state.messages).toBe(2);
  });
});
