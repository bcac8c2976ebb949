// The first page: look someone up, see what is hot and whether the pipeline keeps up.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { card, fmt, h } from "./dom.js";
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
  const hitEl = h("div", { class: "kpi" });
  const driftEl = h("div", { class: "kpi" });
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
      card("Hit rate", "blend, top 10, since start", hitEl),
      card("Drift", "PSI, last hour against the day before", driftEl),
    ),
  );
  const chart = lineChart(chartEl, ["events/s"], { height: 170 });
  const poll = async () => {
    const p = await api("/v1/pipeline");
    kpiBox.replaceChildren(kpis(p));
    chart.push(Date.now() / 1000, [p.events?.inPerSecond ?? 0]);
    const q = await api("/v1/quality");
    const blend = q.prequential.find((x) => x.method === "blend" && x.window === "all");
    hitEl.replaceChildren(
      h("a", { href: "#/quality" }, blend ? fmt.num(blend.hitRate, 3) : "—"),
      h("span", { class: "meta" }, blend ? ` over ${fmt.int(blend.cases)} target events` : ""),
    );
    const psi = Math.max(0, ...Object.values(q.drift.psi));
    driftEl.replaceChildren(
      h("a", { href: "#/quality" }, fmt.num(psi, 3)),
      h("span", { class: "meta" }, " highest PSI"),
    );
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
