// Live trending for both windows, plus how hot the top of each list runs over time, and the
// finals of past windows.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { card, fmt, h, itemLink } from "./dom.js";
import { trendingCard } from "./trending-card.js";

export function trendingPage(root) {
  root.append(
    h("h1", {}, "Trending"),
    h(
      "p",
      { class: "sub" },
      "Score = the window's interactions weighted by type (TRENDING_WEIGHTS; the weights in force are under each list). Updates arrive over server-sent events; a window turns final when the watermark passes its end.",
    ),
  );
  const chartEl = h("div", { class: "chart" });
  const finals = h("div", {}, h("div", { class: "empty" }, "Loading…"));
  let chart;
  // null: no update of that window yet (a gap in the chart, not a zero).
  const top = { "1h": null, "24h": null };
  const push = (w) => (d) => {
    top[w] = d.items[0]?.score ?? 0;
    chart?.push(Date.now() / 1000, [top["1h"], top["24h"]]);
  };
  const a = trendingCard("1h", 15, { onUpdate: push("1h") });
  const b = trendingCard("24h", 15, { onUpdate: push("24h") });
  root.append(
    h("div", { class: "grid g2" }, a.el, b.el),
    h(
      "div",
      { class: "grid wide" },
      card("Top score over time", "as updates arrive", chartEl),
      card("Past windows, final", "last hour windows", finals),
    ),
  );
  chart = lineChart(chartEl, ["#1 of last hour", "#1 of last 24 h"], { height: 220 });
  const loadFinals = () =>
    api("/v1/trending/finals?window=1h").then((r) =>
      finals.replaceChildren(
        r.finals.length
          ? h(
              "table",
              {},
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", {}, "window"),
                  h("th", {}, "top item"),
                  h("th", { class: "num" }, "score"),
                ),
              ),
              h(
                "tbody",
                {},
                r.finals
                  .slice(0, 8)
                  .map((f) =>
                    h(
                      "tr",
                      {},
                      h("td", {}, `${fmt.time(f.windowStart)} → ${fmt.hour(f.windowEnd)}`),
                      h("td", {}, f.top ? itemLink(f.top.itemId) : "—"),
                      h("td", { class: "num" }, f.top ? fmt.num(f.top.score, 1) : "—"),
                    ),
                  ),
              ),
            )
          : h("div", { class: "empty" }, "No window has closed since the process started."),
      ),
    );
  loadFinals().catch(() => {});
  const t = setInterval(() => loadFinals().catch(() => {}), 10_000);
  return () => {
    clearInterval(t);
    a.stop();
    b.stop();
    chart.destroy();
  };
}
