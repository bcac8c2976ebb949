import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { gzipTextSize } from "../bin/replay/text-files.js";
import { setupNats, type TestNats } from "./helpers/nats.js";

/*
 * `reco replay` failures as a user meets them, through the real CLI process:
 * one line naming the problem and a non-zero exit, never a stack trace.
 */

const root = resolve(import.meta.dirname, "..");

async function replay(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(root, "bin", "reco.mjs"), "replay", ...args],
      { cwd: root, env: { ...process.env, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? ((error as { code?: number }).code ?? 1) : 0;
        done({ code: typeof code === "number" ? code : 1, out: stdout, err: stderr });
      },
    );
  });
}

describe("reco replay errors", () => {
  let dir: string;
  let nats: TestNats;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "reco-replay-cli-"));
    nats = await setupNats();
  });
  afterAll(async () => {
    await nats?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // Before: "cannot tell the format of …" for a missing .csv, an unhandled ENOENT trace for .gz.
  it.each(["missing.csv", "missing.csv.gz"])(
    "names a missing file (%s) in one line and exits 1",
    async (name) => {
      const file = join(dir, name);
      const r = await replay([file, "--nats-url", nats.url]);
      expect(r.code).toBe(1);
      expect(r.err).toBe(`reco replay: cannot read ${file}: no such file\n`);
    },
  );

  it("names a missing --movies file too", async () => {
    const ratings = join(dir, "ratings.csv");
    await writeFile(ratings, "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n");
    const movies = join(dir, "nope", "movies.csv");
    const r = await replay([ratings, "--movies", movies, "--nats-url", nats.url]);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`reco replay: cannot read ${movies}: no such file\n`);
  });

  // Before: every row rejected still exited 0.
  it("exits 1 when no row could be read as an event", async () => {
    const file = join(dir, "bad.jsonl");
    await writeFile(file, "nope\nnope\n");
    const r = await replay([file, "--nats-url", nats.url, "--wait", "0"]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^read 2 rows: sent 0 events/);
    expect(r.err).toContain(`reco replay: none of the 2 rows of ${file} could be read as an event`);
  });

  it("sends the rows of a .gz, its progress measured against the uncompressed size", async () => {
    const text = `${Array.from({ length: 2000 }, (_, i) => `{"event_type":"view","user_id":"g${i}","item_id":"x"}`).join("\n")}\n`;
    const file = join(dir, "events.jsonl.gz");
    await writeFile(file, gzipSync(text));
    // The bar's total: the text's size (compressed, this file is a fraction of it).
    expect(await gzipTextSize(file)).toBe(Buffer.byteLength(text));
    expect((await stat(file)).size).toBeLessThan(Buffer.byteLength(text) / 5);
    const r = await replay([file, "--nats-url", nats.url, "--wait", "0", "--limit", "1500"]);
    expect(r.code).toBe(0);
    // --limit counts rows.
    expect(r.out).toMatch(/^read 1500 rows: sent 1500 events/);
  });
});
