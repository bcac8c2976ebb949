// The first page: look someone up, see what is hot and whether the pipeline keeps up.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { card, h, placeholder } from "./dom.js";
import { kpis } from "./pipeline-view.js";
import { trendingCard } from "./trending-card.js";

export function overviewPage(root) {
  const input = h("input", {
    type: "search",
    placeholder: "a user id or an item id",
    autocomplete: "off",
    spellcheck: "false",
  });
  const go = (kind) => (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) location.hash = `#/${kind}/${encodeURIComponent(v)}`;
  };
  const kpiBox = h("div", {});
  const chartEl = h("div", { class: "chart" });
  const a = trendingCard("1h", 10);
  const b = trendingCard("24h", 10);
  root.append(
    h("h1", {}, "Overview"),
    h(
      "p",
      { class: "sub" },
      "Real-time recommendations from the event stream: look a user or an item up, watch trending live.",
    ),
    h(
      "form",
      { class: "search", onsubmit: go("users") },
      input,
      h("button", { type: "submit" }, "User"),
      h("button", { type: "button", class: "ghost", onclick: go("items") }, "Item"),
    ),
    kpiBox,
    h("div", { class: "grid g2" }, a.el, b.el),
    h(
      "div",
      { class: "grid g3" },
      card("Events read per second", "parse", chartEl),
      placeholder("Hit rate", "Online hit rate per source arrives with the quality work."),
      placeholder("Drift", "Category and event-type drift (PSI) arrives with the quality work."),
    ),
  );
  const chart = lineChart(chartEl, ["events/s"], { height: 170 });
  const poll = async () => {
    const p = await api("/v1/pipeline");
    kpiBox.replaceChildren(kpis(p));
    chart.push(Date.now() / 1000, [p.events?.inPerSecond ?? 0]);
  };
  poll().catch(() => {});
  const t = setInterval(() => poll().catch(() => {}), 2000);
  return () => {
    clearInterval(t);
    a.stop();
    b.stop();
    chart.destroy();
  };
}
