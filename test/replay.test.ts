import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { JetStreamManager, NatsConnection } from "nats";
import { registerReplayCommand } from "../bin/commands/replay.js";
import { deriveEventId, REES46_COLUMNS } from "../bin/replay/formats.js";
import { formatSummary, replayFile } from "../bin/replay/run.js";
import { connectNats } from "../connectors/nats/connection.js";
import { EVENTS_STREAM } from "../connectors/nats/streams.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

const dec = new TextDecoder();
const TYPES = ["view", "cart", "purchase", "remove_from_cart"] as const;

/** Text written to a fake stderr. */
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

interface StoredEvent {
  seq: number;
  subject: string;
  msgId: string | undefined;
  event: Record<string, unknown>;
}

async function readStream(jsm: JetStreamManager, from = 1): Promise<StoredEvent[]> {
  const info = await jsm.streams.info(EVENTS_STREAM);
  const out: StoredEvent[] = [];
  for (let seq = from; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(EVENTS_STREAM, { seq });
    out.push({
      seq,
      subject: m.subject,
      msgId: m.header.get("Nats-Msg-Id") || undefined,
      event: JSON.parse(dec.decode(m.data)) as Record<string, unknown>,
    });
  }
  return out;
}

describe("reco replay", () => {
  let nats: TestNats;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let dir: string;

  beforeAll(async () => {
    nats = await setupNats();
    nc = await connectNats({ servers: nats.url, name: "replay-test" });
    jsm = await nc.jetstreamManager();
    dir = await mkdtemp(join(tmpdir(), "reco-replay-"));
  });

  afterAll(async () => {
    await nc?.close();
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("stores exactly the good REES46 rows, and a second run stores nothing new", async () => {
    const lines = [REES46_COLUMNS.join(",")];
    const good: { text: string; type: string; user: string; item: string }[] = [];
    for (let i = 0; i < 60; i++) {
      const line = lines.length + 1;
      if (line === 10) {
        lines.push("x,view,1,2,,,1.0,3,s");
        continue;
      }
      if (line === 33) {
        lines.push("2019-10-01 00:00:00 UTC,view,1,2,,,1.0,3");
        continue;
      }
      const type = TYPES[i % TYPES.length]!;
      const [user, item] = [`${500 + (i % 7)}`, `${1000 + i}`];
      const minute = String(i % 60).padStart(2, "0");
      const text = `2019-10-01 00:${minute}:00 UTC,${type},${item},2053,electronics.phone,,${i}.5,${user},s-${i % 5}`;
      lines.push(text);
      good.push({ text, type, user, item });
    }
    const file = join(dir, "2019-Oct-sample.csv");
    await writeFile(file, `${lines.join("\n")}\n`);

    const err = sink();
    const first = await replayFile({ file, nc, stderr: err.stream });
    expect(first).toMatchObject({ format: "rees46", sent: 58, duplicates: 0, rejected: 2 });
    expect(first.rejections).toEqual([
      { line: 10, reason: 'bad timestamp "x"' },
      { line: 33, reason: "expected 9 columns, got 8" },
    ]);
    expect(err.text()).toBe('line 10: bad timestamp "x"\nline 33: expected 9 columns, got 8\n');
    expect(formatSummary(first)).toMatch(
      /^read 60 rows: sent 58 events in event-time order \(sorted in memory\) \(0 already in the stream\), rejected 2 rows, in \d+\.\ds \(\d+ events\/s\)$/,
    );

    const stored = await readStream(jsm);
    expect(stored).toHaveLength(58);
    stored.forEach((s, i) => {
      const g = good[i]!;
      expect(s.subject).toBe(`events.${g.type}`);
      expect(s.msgId).toBe(deriveEventId("rees46", g.text.split(",")));
      expect(s.event).toMatchObject({
        event_id: s.msgId,
        event_type: g.type,
        user_id: g.user,
        item_id: g.item,
        category_code: "electronics.phone",
      });
      expect(s.event).not.toHaveProperty("brand");
    });

    const second = await replayFile({ file, nc });
    expect(second).toMatchObject({ sent: 58, duplicates: 58, rejected: 2 });
    const info = await jsm.streams.info(EVENTS_STREAM);
    expect(info.state.messages).toBe(58);
    expect(info.state.last_seq).toBe(58);
    expect(info.config.subjects).toEqual(["events.>"]);
    expect(info.config.duplicate_window).toBe(120_000_000_000);
  });

  it("passes JSONL through, reporting bad lines by number, at most 20 then a count", async () => {
    const lines: string[] = [];
    for (let i = 1; i <= 40; i++) {
      if (i % 2 === 0) lines.push(i === 20 ? "" : `{"oops":${i}`);
      else lines.push(`{"event_id":"json-${i}","event_type":"click","user_id":${i},"item_id":"a"}`);
    }
    lines.push('{"event_type":"click","user_id":"late"}');
    const file = join(dir, "events.jsonl");
    await writeFile(file, lines.join("\r\n"));
    const before = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;

    const err = sink();
    const s = await replayFile({ file, nc, stderr: err.stream });
    expect(s).toMatchObject({ format: "jsonl", sent: 21, duplicates: 0, rejected: 19 });
    expect(s.rejections.map((r) => r.line)).toEqual([
      2, 4, 6, 8, 10, 12, 14, 16, 18, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40,
    ]);
    expect(s.rejections[0]!.reason).toMatch(/^bad JSON: /);

    const stored = await readStream(jsm, before + 1);
    expect(stored.map((m) => m.subject)).toEqual(Array(21).fill("events.click"));
    // Lines with an id are published byte for byte.
    expect(stored[0]!.event).toEqual({
      event_id: "json-1",
      event_type: "click",
      user_id: 1,
      item_id: "a",
    });
    expect(stored[20]!.event).toEqual({
      event_type: "click",
      user_id: "late",
      event_id: deriveEventId("jsonl", ['{"event_type":"click","user_id":"late"}']),
    });

    // 25 bad lines: 20 printed, then a count.
    const many = join(dir, "bad.jsonl");
    await writeFile(many, Array.from({ length: 25 }, () => "nope").join("\n"));
    const err2 = sink();
    const s2 = await replayFile({ file: many, nc, stderr: err2.stream, format: "jsonl" });
    expect(s2).toMatchObject({ sent: 0, rejected: 25 });
    expect(s2.rejections).toHaveLength(20);
    const printed = err2.text().trimEnd().split("\n");
    expect(printed).toHaveLength(21);
    expect(printed[19]).toMatch(/^line 20: bad JSON/);
    expect(printed[20]).toBe("… 5 more");
  });

  // --limit counted events sent, not rows; and ratings.csv, ordered by user, went out
  // in file order, so nearly every event was behind the event time of an earlier user's.
  it("replays MovieLens ratings in time order with genres from movies.csv; --limit counts rows", async () => {
    const movies = join(dir, "movies.csv");
    await writeFile(
      movies,
      [
        "movieId,title,genres",
        '1,"Toy Story (1995)",Adventure|Animation|Children',
        '2,"American President, The (1995)",Comedy|Drama|Romance',
        "3,Nothing,(no genres listed)",
      ].join("\n"),
    );
    const ratings = join(dir, "ratings.csv");
    await writeFile(
      ratings,
      [
        "userId,movieId,rating,timestamp",
        "1,1,4.0,964982703",
        "1,2,oops,964981247",
        "2,3,5.0,964982224",
        "2,2,3.5,964983815",
        "3,1,1.0,964982931",
      ].join("\n"),
    );
    const before = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const s = await replayFile({ file: ratings, nc, moviesFile: movies, limit: 3 });
    expect(s).toMatchObject({ format: "movielens", rows: 3, sent: 2, rejected: 1 });
    expect(s.rejections).toEqual([{ line: 3, reason: 'bad rating "oops"' }]);
    const stored = await readStream(jsm, before + 1);
    expect(stored.map((m) => m.subject)).toEqual(Array(2).fill("events.rating"));
    // User 2's rating is older than user 1's, so it goes first.
    expect(stored.map((m) => m.event)).toEqual([
      {
        event_id: deriveEventId("movielens", ["2", "3", "5.0", "964982224"]),
        event_type: "rating",
        event_ts: 964982224000,
        user_id: "2",
        movie_id: "3",
        rating: 5,
      },
      {
        event_id: deriveEventId("movielens", ["1", "1", "4.0", "964982703"]),
        event_type: "rating",
        event_ts: 964982703000,
        user_id: "1",
        movie_id: "1",
        rating: 4,
        category_code: "adventure",
      },
    ]);
    // --order file keeps the file's order.
    const before2 = (await jsm.streams.info(EVENTS_STREAM)).state.last_seq;
    const copy = join(dir, "ratings-file-order.csv");
    await writeFile(copy, "userId,movieId,rating,timestamp\n9,1,4.0,20\n9,2,4.0,10\n");
    await replayFile({ file: copy, nc, order: "file" });
    expect((await readStream(jsm, before2 + 1)).map((m) => m.event.event_ts)).toEqual([
      20_000, 10_000,
    ]);
  });

  it("caps the rate with --rate", async () => {
    const file = join(dir, "rate.jsonl");
    await writeFile(
      file,
      Array.from({ length: 50 }, (_, i) => `{"event_type":"view","user_id":"r${i}"}`).join("\n"),
    );
    const t0 = performance.now();
    const s = await replayFile({ file, nc, rate: 200 });
    expect(s.sent).toBe(50);
    // 50 events at 200/s take at least ~250 ms.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(200);
  });

  it("runs as `reco replay FILE` and prints the summary on stdout", async () => {
    const file = join(dir, "cli.jsonl");
    await writeFile(file, '{"event_type":"cart","user_id":"c"}\n');
    const out: string[] = [];
    const write = vi
      .spyOn(process.stdout, "write")
      .mockImplementation((chunk: string | Uint8Array) => {
        out.push(String(chunk));
        return true;
      });
    try {
      const program = new Command("reco").exitOverride();
      registerReplayCommand(program);
      await program.parseAsync(["replay", file, "--nats-url", nats.url], { from: "user" });
    } finally {
      write.mockRestore();
    }
    expect(out.join("")).toMatch(
      /^read 1 rows: sent 1 events in event-time order \(sorted in memory\) \(0 already in the stream\), rejected 0 rows, in /,
    );
    expect(process.exitCode ?? 0).toBe(0);
  });
});
