import { describe, expect, it } from "vitest";
import {
  deriveEventId,
  detectFormat,
  parseJsonlLine,
  parseMovieLensRow,
  parseMoviesRow,
  parseRees46Row,
  rees46TimeToIso,
  subjectFor,
} from "../bin/replay/formats.js";

const REES46_HEADER =
  "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const rees = (overrides: Partial<Record<number, string>> = {}): string[] => {
  const row = [
    "2019-10-01 00:00:04 UTC",
    "view",
    "1004237",
    "2053013555631882655",
    "electronics.smartphone",
    "apple",
    "1081.98",
    "535871217",
    "c6bd7419-2748-4c56-95b4-8cec9ff8b80d",
  ];
  for (const [i, v] of Object.entries(overrides)) row[Number(i)] = v!;
  return row;
};

describe("event ids", () => {
  // Ids came from the file's base name and line number, so a renamed copy of a file
  // was counted twice and a row moved to another line was a new event.
  it("are UUID-shaped and depend only on the row's fields and format", () => {
    const a = deriveEventId("rees46", rees());
    expect(a).toMatch(UUID);
    expect(deriveEventId("rees46", rees())).toBe(a);
    expect(deriveEventId("rees46", rees({ 7: "535871218" }))).not.toBe(a);
    expect(deriveEventId("movielens", rees())).not.toBe(a);
    // Field boundaries count: "a,bc" and "ab,c" are different rows.
    expect(deriveEventId("jsonl", ["a", "bc"])).not.toBe(deriveEventId("jsonl", ["ab", "c"]));
  });

  it("are the same for the same row wherever it stands in a file", () => {
    const r1 = parseRees46Row(rees());
    const r2 = parseRees46Row(rees());
    expect(r1.ok && r2.ok && r1.event.event_id === r2.event.event_id).toBe(true);
  });
});

describe("REES46 rows", () => {
  it("become events with ISO time, item_id and session_id", () => {
    const r = parseRees46Row(rees());
    expect(r).toEqual({
      ok: true,
      event: {
        event_id: deriveEventId("rees46", rees()),
        event_type: "view",
        event_ts: "2019-10-01T00:00:04Z",
        user_id: "535871217",
        item_id: "1004237",
        category_code: "electronics.smartphone",
        brand: "apple",
        price: 1081.98,
        session_id: "c6bd7419-2748-4c56-95b4-8cec9ff8b80d",
      },
    });
    if (r.ok) expect(subjectFor(r.event)).toBe("events.view");
  });

  it("omit an empty category_code and brand", () => {
    const r = parseRees46Row(rees({ 1: "remove_from_cart", 4: "", 5: "" }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.event).not.toHaveProperty("category_code");
    expect(r.event).not.toHaveProperty("brand");
    expect(r.event.event_type).toBe("remove_from_cart");
  });

  it.each([
    [rees({ 0: "x" }), 'bad timestamp "x"'],
    [rees({ 0: "2019-13-01 00:00:00 UTC" }), 'bad timestamp "2019-13-01 00:00:00 UTC"'],
    [rees({ 0: "2019-02-30 00:00:00 UTC" }), 'bad timestamp "2019-02-30 00:00:00 UTC"'],
    [rees({ 0: "" }), "missing event_time"],
    [rees({ 1: "" }), "missing event_type"],
    [rees({ 1: "view.x" }), 'bad event_type "view.x"'],
    [rees({ 2: "" }), "missing product_id"],
    [rees({ 6: "12,5" }), 'bad price "12,5"'],
    [rees({ 6: "-1" }), 'bad price "-1"'],
    [rees({ 7: "" }), "missing user_id"],
    [rees().slice(0, 7), "expected 9 columns, got 7"],
    [[...rees(), "extra"], "expected 9 columns, got 10"],
  ])("reject %j: %s", (fields, reason) => {
    expect(parseRees46Row(fields)).toEqual({ ok: false, reason });
  });

  it("time conversion keeps fractions", () => {
    expect(rees46TimeToIso("2019-10-01 00:00:00 UTC")).toBe("2019-10-01T00:00:00Z");
    expect(rees46TimeToIso("2019-10-01 23:59:59.5 UTC")).toBe("2019-10-01T23:59:59.5Z");
    expect(rees46TimeToIso("2019-10-01T00:00:00Z")).toBeUndefined();
  });
});

describe("MovieLens rows", () => {
  const genres = new Map<string, string>();
  for (const row of [
    ["1", "Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"],
    ["2", "Heat, The (1995)", "Action|Crime|Thriller"],
    ["3", "Unknown", "(no genres listed)"],
    ["4", "Blade Runner (1982)", "Sci-Fi|Thriller"],
  ]) {
    const m = parseMoviesRow(row);
    if (m.ok && m.category) genres.set(m.movieId, m.category);
  }

  it("movies give their first genre, lowercased, as category", () => {
    expect([...genres]).toEqual([
      ["1", "adventure"],
      ["2", "action"],
      ["4", "sci-fi"],
    ]);
    expect(parseMoviesRow(["5", "x"])).toEqual({ ok: false, reason: "expected 3 columns, got 2" });
  });

  it("become rating events with epoch-millis time and movie_id", () => {
    const r = parseMovieLensRow(["7", "2", "4.5", "1147880044"], genres);
    expect(r).toEqual({
      ok: true,
      event: {
        event_id: deriveEventId("movielens", ["7", "2", "4.5", "1147880044"]),
        event_type: "rating",
        event_ts: 1147880044000,
        user_id: "7",
        movie_id: "2",
        rating: 4.5,
        category_code: "action",
      },
    });
  });

  it("without a genre get no category", () => {
    const r = parseMovieLensRow(["7", "3", "3", "1147880044"], genres);
    expect(r.ok && r.event).not.toHaveProperty("category_code");
    expect(parseMovieLensRow(["7", "3", "3", "1147880044"]).ok).toBe(true);
  });

  it.each([
    [["7", "2", "four", "1147880044"], 'bad rating "four"'],
    [["7", "2", "4", "yesterday"], 'bad timestamp "yesterday"'],
    [["7", "2", "4", "1.5"], 'bad timestamp "1.5"'],
    [["", "2", "4", "1"], "missing userId"],
    [["7", "", "4", "1"], "missing movieId"],
    [["7", "2", "", "1"], "missing rating"],
    [["7", "2", "4", ""], "missing timestamp"],
    [["7", "2", "4"], "expected 4 columns, got 3"],
  ])("reject %j: %s", (fields, reason) => {
    expect(parseMovieLensRow(fields)).toEqual({ ok: false, reason });
  });
});

describe("JSONL lines", () => {
  it("pass through as they are, raw bytes included, when they carry an event_id", () => {
    const text = '{"event_id":"e-1","event_type":"click","user_id":42,"item_id":"a","extra":[1]}';
    expect(parseJsonlLine(text)).toEqual({ ok: true, event: JSON.parse(text), raw: text });
  });

  it("get a derived event_id when it is missing", () => {
    const line = '{"event_type":"purchase","user_id":"u"}';
    const r = parseJsonlLine(line);
    expect(r).toEqual({
      ok: true,
      event: { event_type: "purchase", user_id: "u", event_id: deriveEventId("jsonl", [line]) },
    });
  });

  it.each([
    ['{"event_type":"view",', /^bad JSON: /],
    ["[1,2]", /^bad JSON: not an object$/],
    ["null", /^bad JSON: not an object$/],
    ['{"user_id":"u"}', /^missing event_type$/],
    ['{"event_type":"a b"}', /^bad event_type "a b"$/],
    ['{"event_type":"view","event_id":17}', /^bad event_id "17"$/],
  ])("reject %s", (text, reason) => {
    const r = parseJsonlLine(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});

describe("format detection", () => {
  it("reads the header line first, then the extension", () => {
    expect(detectFormat("a.csv", REES46_HEADER)).toBe("rees46");
    expect(detectFormat("a.csv.gz", `\uFEFF${REES46_HEADER}\r`)).toBe("rees46");
    expect(detectFormat("ratings.csv", "userId,movieId,rating,timestamp")).toBe("movielens");
    expect(detectFormat("events.txt", '{"event_type":"view"}')).toBe("jsonl");
    expect(detectFormat("events.ndjson", "")).toBe("jsonl");
    expect(detectFormat("events.jsonl.gz", "")).toBe("jsonl");
    expect(detectFormat("data.csv", "a,b,c")).toBeUndefined();
  });
});
