import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type NatsConnection } from "nats";
import type { App } from "../../bin/app.js";
import { readLog, type LogEvent } from "../../bin/eval/log.js";
import { collectCases, listFor, type Case } from "../../bin/eval/run.js";
import { TEST_CUTS } from "../../bin/commands/eval.js";
import { defaultBlend, defaultSourceSettings, presetNamed } from "../../actors/sources/index.js";
import type { CollaborativeView, CovisitView } from "../../actors/stages/index.js";
import { setupNats, type TestNats } from "./nats.js";
import { startTestApp } from "./app.js";

/*
 * `reco eval` scores what the engine serves: at every test cut of a shared log, the blend's
 * list that eval scores for a case (seen items allowed, and new items only) is the list the
 * running engine's GetRecommendations serves that user after the log up to the cut went through
 * it (nats-server, the stages, LevelDB, ALS trained when the input went quiet). One test file per
 * log (eval-served-rees46, eval-served-movielens): each takes minutes, and two files run side by
 * side.
 */

const DATA = resolve(import.meta.dirname, "..", "..", "..", "shared", "data");
const K = 10;
const PARTITIONS = 2;

/** An event of the log as a publisher sends it (the event contract, DESIGN §2). */
function wire(e: LogEvent): Record<string, unknown> {
  return {
    event_id: e.id,
    event_type: e.t,
    event_ts: e.ts,
    user_id: e.u,
    item_id: e.i,
    ...(e.c !== "" ? { category_code: e.c } : {}),
    ...(e.b !== "" ? { brand: e.b } : {}),
    ...(e.pr >= 0 ? { price: e.pr } : {}),
    ...(e.t === "rating" ? { rating: e.r } : {}),
    ...(e.sess !== undefined ? { session_id: e.sess } : {}),
  };
}

async function publish(nc: NatsConnection, events: readonly LogEvent[]) {
  const js = nc.jetstream();
  // In order on one connection (JetStream's order is the log's), acks awaited in windows.
  for (let x = 0; x < events.length; x += 2000) {
    await Promise.all(
      events
        .slice(x, x + 2000)
        .map((e) =>
          js.publish(`events.${e.t}`, JSON.stringify(wire(e)), { msgID: e.id, timeout: 30_000 }),
        ),
    );
  }
}

/**
 * Waits until every source stage has read `accepted` events and, where the blend weighs
 * COLLABORATIVE (`trains`), ALS trained on all of them with no training running. Where it does
 * not (movies), a training the engine runs anyway goes on beside the next cut: the answers do
 * not read its model (waiting for it was a third of the MovieLens file's time).
 */
async function caughtUp(app: App, accepted: number, trains: boolean) {
  const instance = (id: string) => app.pipeline.instance(id);
  for (const until = Date.now() + 180_000; ;) {
    const collab = instance("collaborative-trainer/0")?.handler() as CollaborativeView | undefined;
    // Events fed over every item partition's covisit stage (undefined while one is not running).
    const covisitFed = Array.from({ length: PARTITIONS }, (_, q) => q).reduce<number | undefined>(
      (n, q) => {
        const v = instance(`covisit/${q}`)?.handler() as CovisitView | undefined;
        return n === undefined || v === undefined ? undefined : n + v.fed();
      },
      0,
    );
    const st = collab?.status();
    const history = Array.from({ length: PARTITIONS }, (_, p) => p).every((p) => {
      const at = instance(`history/${p}`)?.position();
      return at !== undefined && at === instance(`watermark/${p}`)?.position();
    });
    const trained = !trains || (st?.trainAt === accepted && st.models.implicit === accepted);
    if (
      st?.events === accepted &&
      trained &&
      (!trains || !collab!.training()) &&
      covisitFed === accepted
    )
      if (history) return;
    if (Date.now() > until)
      throw new Error(`not caught up: ${JSON.stringify(st)} of ${accepted}, covisit ${covisitFed}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The shared logs the engine's answers are compared on. */
const SERVED_LOGS = {
  REES46: { path: join(DATA, "rees46", "2019-Oct-head.csv"), preset: "ecommerce" },
  MovieLens: { path: join(DATA, "ml-latest-small"), preset: "movies" },
} as const;

/** The comparison on one shared log, as a suite of the calling test file. */
export function describeEvalServed(log: keyof typeof SERVED_LOGS): void {
  const { path, preset: presetName } = SERVED_LOGS[log];
  describe(`reco eval against the engine's answers on ${log}`, () => {
    let nats: TestNats;
    let app: App;
    let nc: NatsConnection;
    let dir: string;
    let events: LogEvent[];
    let cases: Case[];
    const preset = presetNamed(presetName);
    const bs = defaultBlend(preset);
    // What `reco eval --blend-only` trains: no explicit model (not in the blend), and no ALS at all
    // where the blend gives COLLABORATIVE no weight (movies); the engine trains as it always does.
    const sources = defaultSourceSettings(preset);
    delete sources.explicit;
    if (!((bs.weights.COLLABORATIVE ?? 0) > 0)) delete sources.implicit;

    beforeAll(async () => {
      if (!existsSync(path)) throw new Error(`shared log missing: ${path} (../shared/data)`);
      events = (await readLog(path)).events;
      cases = collectCases(events, { preset, k: K, testCuts: TEST_CUTS, sources, blend: bs }).cases;
      dir = await mkdtemp(join(tmpdir(), "reco-eval-served-"));
      nats = await setupNats();
      app = await startTestApp(nats.url, dir, {
        PARTITIONS: String(PARTITIONS),
        PRESET: presetName,
        // A training when the input goes quiet after each cut's events, and only then: what
        // eval does at each cut.
        IDLE_TIMEOUT_MS: "1000",
        RETRAIN_INTERVAL_MS: String(10 * 365 * 86_400_000),
        // Online quality only watches the answers; without it each cut's replay is faster.
        QUALITY: "off",
      });
      nc = await connect({ servers: nats.url });
    }, 300_000);
    afterAll(async () => {
      await nc?.close();
      await app?.stop();
      await nats?.cleanup();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("scores, at every cut, the lists the engine serves", async () => {
      const N = events.length;
      const trains = (bs.weights.COLLABORATIVE ?? 0) > 0;
      let fed = 0;
      let compared = 0;
      for (const cut of TEST_CUTS) {
        const from = Math.min(N, Math.floor(N * cut));
        await publish(nc, events.slice(fed, from));
        fed = from;
        await caughtUp(app, fed, trains);
        for (const c of cases.filter((x) => x.cut === cut)) {
          for (const mode of ["seen", "new"] as const) {
            const answer = app.pipeline.backend.recommendNow!(
              c.user,
              K,
              mode === "new" ? { excludeTouched: true } : undefined,
            );
            const served = answer!.items.map((i) => i.itemId);
            expect({ cut, user: c.user, mode, served }).toEqual({
              cut,
              user: c.user,
              mode,
              served: listFor("blend", c, mode, bs, K),
            });
            compared++;
          }
        }
      }
      expect(compared).toBeGreaterThan(100);
    }, 600_000);
  });
}
