import { describe, expect, it } from "vitest";
import { normaliseEvent } from "../actors/contract/index.js";
import { createDesignDriver, DESIGN_DEFAULTS } from "../bin/eval/design.js";
import { generateLog } from "./helpers/events.js";
import { DEFAULT_REF, eventTimeOf, reference } from "./helpers/reference.js";

/**
 * `reco eval`'s design ranking comes from the engine's stage handlers driven in memory
 * (bin/eval/design.ts). The reference (test/helpers/reference.ts) is what the NATS pipeline is
 * checked against at 1, 3 and 8 partitions (reference-compare-partitions.test.ts); here the
 * in-memory driver is checked against the same reference, user by user, so eval's "design" rows
 * are the pipeline's answers.
 */
describe("reco eval's in-memory design driver", () => {
  it("answers every user as the reference (hence the NATS pipeline) does, 6 days of events", () => {
    const DAY = 86_400_000;
    const log = generateLog({
      seed: 12,
      events: 6000,
      users: 150,
      items: 120,
      categories: ["electronics", "apparel", "home", "sports"],
      start: Date.UTC(2024, 0, 1),
      spanMs: 6 * DAY,
      lateShare: 0,
      lateByMs: 0,
    }).sort((a, b) => eventTimeOf(a.event_ts) - eventTimeOf(b.event_ts));
    const ref = reference(log, DEFAULT_REF);
    const driver = createDesignDriver({ preset: "ecommerce", ...DESIGN_DEFAULTS });
    const events = log.map((e) => {
      const n = normaliseEvent(e);
      if (!n.ok) throw new Error(n.reason);
      return n.event;
    });
    // Uneven batches: the answers must not depend on how the log is cut into hops.
    for (let x = 0, size = 1; x < events.length; x += size, size = (size * 7) % 997) {
      driver.feed(events.slice(x, x + size));
    }
    let personalised = 0;
    for (const u of ref.users()) {
      const want = ref.recommend(u, 10).map((i) => [i.itemId, i.source, i.score]);
      const got = driver.answer(u, 10).items.map((i) => [i.itemId, i.source, i.score]);
      expect(got, u).toEqual(want);
      if (want.some((w) => w[1] === "PERSONALIZED")) personalised++;
    }
    expect(personalised).toBeGreaterThan(50);
  });
});
