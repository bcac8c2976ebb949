// A user: the ranked items with their source and reason, top categories, and the answer's facts.
import { api } from "./api.js";
import { barChart } from "./charts.js";
import {
  badge,
  card,
  fmt,
  h,
  itemLink,
  titledItem,
  placeholder,
  priceCell,
  scoreCell,
} from "./dom.js";
import { searchBox } from "./search.js";

export function userPage(root, userId) {
  root.append(
    h("h1", {}, "Users"),
    h(
      "p",
      { class: "sub" },
      "Why a user gets these items: each one's source and reason, as the JSON API and gRPC serve them.",
    ),
    searchBox("users", userId, "user id, e.g. 541312140"),
  );
  if (!userId) return;
  const out = h("div", { id: "user-result" }, h("div", { class: "empty" }, "Loading…"));
  root.append(out);
  let chart;
  // Recent events come from the history source; a backend without it answers 501.
  const events = h(
    "div",
    {},
    placeholder(
      "Recent events",
      "The user's recent events appear here once the history source serves them.",
    ),
  );
  api(`/v1/users/${encodeURIComponent(userId)}/events?n=10`).then(
    (r) =>
      events.replaceChildren(
        card(
          "Recent events",
          "newest first",
          r.events.length
            ? h(
                "table",
                { id: "events" },
                h(
                  "tbody",
                  {},
                  r.events.map((e) =>
                    h(
                      "tr",
                      {},
                      h("td", {}, badge(e.eventType.toUpperCase(), "event")),
                      h(
                        "td",
                        {},
                        itemLink(e.itemId),
                        h("div", { class: "explain" }, e.category || ""),
                      ),
                      h("td", { class: "num explain" }, fmt.time(e.eventTime)),
                    ),
                  ),
                ),
              )
            : h("div", { class: "empty" }, "No recent events."),
        ),
      ),
    () => {},
  );
  api(`/v1/users/${encodeURIComponent(userId)}/recommendations?n=20`).then(
    (r) => {
      const max = r.items.reduce((m, i) => Math.max(m, i.score), 0);
      const rows = r.items.map((i) =>
        h(
          "tr",
          { "data-item-id": i.itemId },
          h("td", { class: "rank" }, i.rank),
          h("td", {}, titledItem(i), h("div", { class: "explain" }, i.explanation)),
          h("td", {}, badge(i.source)),
          h("td", {}, scoreCell(i.score, max)),
          h("td", {}, i.category || "—", h("div", { class: "explain" }, i.brand || "")),
          h("td", { class: "num" }, priceCell(i.averagePrice)),
        ),
      );
      const table = h(
        "table",
        { id: "recommendations" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            h("th", {}, "#"),
            h("th", {}, "item and reason"),
            h("th", {}, "source"),
            h("th", {}, "score"),
            h("th", {}, "category"),
            h("th", { class: "num" }, "avg price"),
          ),
        ),
        h("tbody", {}, rows),
      );
      const chartEl = h("div", { class: "chart" });
      // Items chosen from this user's own events (trending and popular ones are everyone's).
      const mine = ["PERSONALIZED", "HISTORY", "SIMILAR_ITEMS", "COLLABORATIVE"];
      const personalised = r.items.filter((i) => mine.includes(i.source)).length;
      out.replaceChildren(
        ...(r.statusMessage
          ? [h("div", { class: "callout", id: "status-message" }, r.statusMessage)]
          : []),
        h(
          "div",
          { class: "grid wide" },
          card(
            `Recommendations for ${r.userId}`,
            `${r.items.length} items · ${personalised} personalised`,
            r.items.length ? table : h("div", { class: "empty" }, "Nothing to recommend yet."),
          ),
          h(
            "div",
            { class: "grid", style: "margin:0" },
            card(
              "Top categories",
              "interactions, last 24 h",
              r.topCategories.length
                ? chartEl
                : h(
                    "div",
                    { class: "empty" },
                    "No category interest yet (unknown user or no categorised events).",
                  ),
            ),
            card(
              "This answer",
              null,
              h(
                "dl",
                { class: "facts" },
                h("dt", {}, "watermark"),
                h("dd", {}, fmt.time(r.watermark)),
                h("dt", {}, "staleness"),
                h("dd", {}, `${fmt.int(r.stalenessMs)} ms`),
                h("dt", {}, "same as"),
                h("dd", { class: "mono" }, "GetRecommendations"),
              ),
            ),
            events,
          ),
        ),
      );
      if (r.topCategories.length)
        chart = barChart(
          chartEl,
          r.topCategories.map((c) => c.category),
          r.topCategories.map((c) => c.interest),
        );
    },
    (err) => out.replaceChildren(h("div", { class: "error" }, err.message)),
  );
  return () => chart?.destroy();
}
