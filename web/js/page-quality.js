// DESIGN §7's live quality: prequential hit rate per method, A/B arms with their intervals,
// drift of the traffic. Everything comes from /v1/quality, which reads the same gauges as /metrics.
import { api } from "./api.js";
import { card, counted, fmt, h } from "./dom.js";

const WINDOWS = ["all", "24h", "1h"];
const WINDOW_NAMES = { all: "since start", "24h": "last 24 h", "1h": "last hour" };
const DRIFT_NAMES = {
  category: "category mix",
  event_type: "event-type mix",
  item_popularity: "item popularity",
};

function psiLevel(v) {
  return v > 0.25 ? "large shift" : v > 0.1 ? "moderate" : "stable";
}

/** An interval as a bar on [0, 1] with the estimate marked. */
function intervalBar(lower, rate, upper) {
  const pct = (x) => `${Math.max(0, Math.min(100, x * 100)).toFixed(1)}%`;
  return h(
    "div",
    { class: "interval", title: `${fmt.pct(lower)} – ${fmt.pct(upper)}` },
    h("span", { class: "range", style: `left:${pct(lower)};width:${pct(upper - lower)}` }),
    h("span", { class: "mark", style: `left:${pct(rate)}` }),
  );
}

function armsCard(q, window) {
  const rows = q.arms.filter((a) => a.window === window);
  if (rows.length === 0)
    return card(
      "A/B arms",
      "ARMS not set",
      h("p", { class: "sub" }, 'Set ARMS to split users into arms (README "Quality").'),
    );
  const min = q.minimums.scoredEvents;
  const best = Math.max(...rows.filter((a) => a.enough).map((a) => a.hitRate));
  return card(
    "A/B arms",
    `hit rate@10, ${WINDOW_NAMES[window]}, Wilson 95% interval`,
    h(
      "table",
      { class: "arms" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "arm"),
          h("th", { class: "num" }, "cases"),
          h("th", { class: "num" }, "hits"),
          h("th", { class: "num" }, "hit rate"),
          h("th", {}, "95% interval"),
          h("th", {}, ""),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((a) =>
          h(
            "tr",
            { "data-arm": a.arm },
            h(
              "td",
              {},
              a.arm,
              a.enough && a.hitRate === best ? h("span", { class: "badge best" }, "best") : null,
            ),
            h("td", { class: "num" }, fmt.int(a.cases)),
            h("td", { class: "num" }, fmt.int(a.hits)),
            ...(a.enough
              ? [
                  h(
                    "td",
                    { class: "num mono" },
                    counted(fmt.pct(a.hitRate), a.cases, min, "events"),
                  ),
                  h("td", { class: "mono" }, `${fmt.pct(a.lower)} – ${fmt.pct(a.upper)}`),
                  h("td", {}, intervalBar(a.lower, a.hitRate, a.upper)),
                ]
              : [h("td", { colspan: 3 }, counted("", a.cases, min, "events", false))]),
          ),
        ),
      ),
    ),
    h("p", { class: "sub" }, overlap(rows)),
  );
}

function overlap(rows) {
  if (rows.length < 2 || rows.some((a) => !a.enough)) return "Not enough cases yet to compare.";
  const sorted = [...rows].sort((a, b) => b.hitRate - a.hitRate);
  const [a, b] = sorted;
  return a.lower > b.upper
    ? `${a.arm} is ahead of ${b.arm}: the intervals do not overlap.`
    : `${a.arm} leads ${b.arm}, but the intervals overlap: keep collecting.`;
}

function methodsCard(q, window) {
  const rows = q.prequential.filter((p) => p.window === window);
  const min = q.minimums.scoredEvents;
  return card(
    "Prequential hit rate",
    `top 10 just before each target event, ${WINDOW_NAMES[window]}`,
    h(
      "table",
      { class: "methods" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", {}, "method"),
          h("th", { class: "num" }, "cases"),
          h("th", { class: "num" }, "HR@10"),
          h("th", { class: "num" }, "NDCG@10"),
          h("th", { class: "num" }, "coverage"),
        ),
      ),
      h(
        "tbody",
        {},
        rows.map((p) =>
          h(
            "tr",
            { "data-method": p.method },
            h("td", {}, p.method),
            h("td", { class: "num" }, fmt.int(p.cases)),
            ...(p.enough
              ? [
                  h(
                    "td",
                    { class: "num mono" },
                    counted(fmt.num(p.hitRate, 3), p.cases, min, "events"),
                  ),
                  h("td", { class: "num mono" }, fmt.num(p.ndcg, 3)),
                  h("td", { class: "num mono" }, fmt.num(p.coverage, 3)),
                ]
              : [
                  h("td", { class: "num", colspan: 3 }, counted("", p.cases, min, "events", false)),
                ]),
          ),
        ),
      ),
    ),
  );
}

function driftCard(q) {
  const dims = Object.keys(DRIFT_NAMES);
  const min = q.minimums.driftEvents;
  // The smaller window is what the figure rests on.
  const fewest = Math.min(q.drift.events.recent ?? 0, q.drift.events.reference ?? 0);
  return card(
    "Drift",
    `PSI, last hour (${fmt.int(q.drift.events.recent)} events) against the 24 h before (${fmt.int(q.drift.events.reference)})`,
    h(
      "table",
      { class: "drift" },
      h(
        "tbody",
        {},
        dims.map((d) =>
          h(
            "tr",
            { "data-dimension": d },
            h("td", {}, DRIFT_NAMES[d]),
            ...(q.drift.enough
              ? [
                  h(
                    "td",
                    { class: "num mono" },
                    counted(fmt.num(q.drift.psi[d] ?? 0, 3), fewest, min, "events"),
                  ),
                  h("td", {}, psiLevel(q.drift.psi[d] ?? 0)),
                ]
              : [h("td", { colspan: 2 }, counted("", fewest, min, "events", false))]),
          ),
        ),
      ),
    ),
  );
}

function modelsCard(q) {
  const rows = q.models.slice(0, 10);
  const min = q.minimums.heldOutUsers;
  const notComputed = "not computed for this version (trained before offline figures existed)";
  return card(
    "Models",
    "ALS versions: input point trained at, offline figures on a held-out slice, when served",
    rows.length === 0
      ? h("p", { class: "sub" }, "No model trained yet.")
      : h(
          "table",
          { class: "models" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "kind"),
              h("th", { class: "num" }, "version"),
              h("th", { class: "num" }, "data position"),
              h(
                "th",
                { class: "num", title: "HR@10 on a held-out slice of its training data" },
                "HR@10 held out",
              ),
              h("th", { class: "num" }, "NDCG@10"),
              h("th", {}, "served"),
            ),
          ),
          h(
            "tbody",
            {},
            rows.map((m) =>
              h(
                "tr",
                { "data-model": `${m.kind}:${m.version}` },
                h("td", {}, m.kind),
                h("td", { class: "num" }, m.version),
                h("td", { class: "num" }, fmt.int(m.dataPosition)),
                ...(!m.offline
                  ? [
                      h("td", { class: "num", title: notComputed }, "—"),
                      h("td", { class: "num", title: notComputed }, "—"),
                    ]
                  : m.offline.enough
                    ? [
                        h(
                          "td",
                          { class: "num" },
                          counted(fmt.pct(m.offline.hitRate), m.offline.users, min, "users"),
                        ),
                        h("td", { class: "num" }, fmt.num(m.offline.ndcg, 3)),
                      ]
                    : [
                        h(
                          "td",
                          { class: "num", colspan: 2 },
                          counted("", m.offline.users, min, "users", false),
                        ),
                      ]),
                h("td", {}, fmt.time(m.trainedAt)),
              ),
            ),
          ),
        ),
  );
}

export function qualityPage(root) {
  let window = "all";
  const body = h("div", { class: "grid g2" });
  const tabs = h(
    "div",
    { class: "tabs" },
    WINDOWS.map((w) =>
      h(
        "button",
        {
          type: "button",
          class: w === window ? "on" : "ghost",
          "data-window": w,
          onclick: () => {
            window = w;
            for (const b of tabs.children) b.className = b.dataset.window === w ? "on" : "ghost";
            poll().catch(() => {});
          },
        },
        WINDOW_NAMES[w],
      ),
    ),
  );
  root.append(
    h("h1", {}, "Quality and drift"),
    h(
      "p",
      { class: "sub" },
      'How good the recommendations are, live, and whether the traffic drifts (DESIGN §7, README "Quality").',
    ),
    tabs,
    body,
  );
  const poll = async () => {
    const q = await api("/v1/quality");
    body.replaceChildren(armsCard(q, window), methodsCard(q, window), driftCard(q), modelsCard(q));
  };
  poll().catch(() => {});
  const t = setInterval(() => poll().catch(() => {}), 3000);
  return () => clearInterval(t);
}
