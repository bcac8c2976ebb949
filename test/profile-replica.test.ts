import { describe, expect, it } from "vitest";
import { createProfileReplica } from "../actors/serving/index.js";
import type { ProfileRecord } from "../actors/stages/index.js";

/**
 * The gateway's profile replica applied interest-ranking hops in stream
 * order. A restarted interest-ranking replays from its snapshot with other batch boundaries
 * (other hop ids), so its replayed hops are stored after newer ones, and put older profiles back
 * for good: the cluster test's answers stayed wrong after the NATS node kill while every stage
 * had caught up. A profile is now taken only from a hop newer (higher `upTo`) than the one the
 * user's current profile came from.
 */

const profile = (u: string, category: string, interest: number): ProfileRecord => ({
  u,
  top: [[category, interest]],
  pur: [],
  wm: 0,
});

describe("the gateway's profile replica", () => {
  it("keeps a user's newest profile when an older hop is replayed after it", () => {
    const r = createProfileReplica();
    r.apply(profile("u1", "books", 1), 12);
    r.apply(profile("u1", "books", 3), 30);
    // Replayed after a restart of interest-ranking from a snapshot at 5: (5, 12] again.
    r.apply(profile("u1", "books", 1), 12);
    expect(r.profile("u1")?.top).toEqual([["books", 3]]);
  });

  it("still applies a hop that was lost and re-sent after newer ones, for users it alone has", () => {
    const r = createProfileReplica();
    r.apply(profile("u1", "books", 3), 30);
    r.apply(profile("u2", "toys", 2), 20); // (12, 20] came late: u2 is in no later hop
    r.apply(profile("u1", "books", 2), 20); // u1 is: its profile of 30 stays
    expect(r.profile("u2")?.top).toEqual([["toys", 2]]);
    expect(r.profile("u1")?.top).toEqual([["books", 3]]);
  });

  it("takes the last of several profiles a user has in one hop", () => {
    // A batch that spans several watermark steps (after waiting for a parse hop stored late)
    // sends a user's profile at each step in one hop: the gateway kept the first and served it
    // for good (the cluster test's 3-6 users stuck after the worker and NATS node kills).
    const r = createProfileReplica();
    r.apply(profile("u1", "books", 1), 5);
    r.apply(profile("u1", "books", 2), 65);
    r.apply(profile("u1", "books", 3), 65);
    expect(r.profile("u1")?.top).toEqual([["books", 3]]);
    // The same hop replayed (a restart of interest-ranking from a snapshot before it) ends the
    // same, and an older one still changes nothing.
    r.apply(profile("u1", "books", 2), 65);
    r.apply(profile("u1", "books", 3), 65);
    r.apply(profile("u1", "books", 1), 30);
    expect(r.profile("u1")?.top).toEqual([["books", 3]]);
  });

  it("does not bring back a profile deleted by a newer hop", () => {
    const r = createProfileReplica();
    r.apply(profile("u1", "books", 1), 10);
    r.apply({ u: "u1", top: [], pur: [], wm: 0 }, 40); // aged out of the horizon
    r.apply(profile("u1", "books", 1), 10);
    expect(r.profile("u1")).toBeUndefined();
    expect(r.size).toBe(0);
  });
});
