import { describe, expect, it } from "vitest";
import { createHostReaders, subjectMatches } from "../actors/host/index.js";

/**
 * A parse hop is read by its partition's stages (reco.parse.3) and by the
 * merged stages' wildcard input (reco.parse.*); all of them count as its readers, so it is
 * decoded once for all.
 */
describe("readers of a hop message in this process", () => {
  it("matches NATS filter subjects", () => {
    expect(subjectMatches("reco.parse.*", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.parse.3", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.parse.3", "reco.parse.4")).toBe(false);
    expect(subjectMatches("reco.parse.*", "reco.parse.3.x")).toBe(false);
    expect(subjectMatches("reco.>", "reco.parse.3")).toBe(true);
    expect(subjectMatches("reco.>", "reco")).toBe(false);
    expect(subjectMatches("events.*", "reco.parse.3")).toBe(false);
  });

  it("counts the readers of every filter that matches, in the message's stream only", () => {
    const r = createHostReaders();
    const gone = [
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.3"),
      r.add("HOPS", "reco.parse.*"),
      r.add("HOPS", "reco.parse.*"),
      r.add("HOPS", "reco.items.3"),
      r.add("EVENTS", "events.>"),
    ];
    expect(r.of("HOPS", "reco.parse.3")).toBe(5);
    expect(r.of("HOPS", "reco.parse.4")).toBe(2);
    expect(r.of("HOPS", "reco.items.3")).toBe(1);
    expect(r.of("EVENTS", "events.view")).toBe(1);
    expect(r.of("OTHER", "reco.parse.3")).toBe(0);
    // An instance that stops is no longer counted (once, however often its undo runs).
    gone[3]!();
    gone[3]!();
    expect(r.of("HOPS", "reco.parse.3")).toBe(4);
    gone[0]!();
    expect(r.of("HOPS", "reco.parse.3")).toBe(3);
    expect(r.of("HOPS", "reco.parse.4")).toBe(1);
  });
});
