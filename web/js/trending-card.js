// A live trending list (SSE), updated in place: rows whose score moved flash briefly.
import { followTrending } from "./api.js";
import { badge, card, fmt, h, titledItem, scoreCell } from "./dom.js";

export function trendingCard(window, k = 10, { onUpdate } = {}) {
  const title = window === "1h" ? "Last hour" : "Last 24 hours";
  const meta = h("span", {}, "waiting for the first update…");
  const tbody = h("tbody");
  const head = h("tr");
  const table = h("table", { "data-trending": window }, h("thead", {}, head), tbody);
  // Views always; clicks, carts and purchases when some item has them (TRENDING_WEIGHTS decides
  // what counts: REES46 has no clicks, carts and purchases do).
  const countsOf = (items) => [
    "views",
    ...["clicks", "carts", "purchases"].filter((c) => items.some((i) => i[c] > 0)),
  ];
  const empty = h("div", { class: "empty" }, "No events in a trending window yet.");
  // What a score counts: the engine's TRENDING_WEIGHTS, as each update names them.
  const weights = h("div", { class: "note", "data-weights": "" });
  const el = card(title, meta, empty, table, weights);
  table.style.display = "none";
  let last = new Map();
  let lastAt = 0;
  let doc;
  let state = "connecting";

  const showMeta = () => {
    meta.replaceChildren(
      doc ? `${fmt.time(doc.windowStart)} → ${fmt.hour(doc.windowEnd)} · ` : "",
      doc?.final ? badge("final", "final") : badge(state === "live" ? "live" : state, "live"),
      lastAt ? ` · updated ${fmt.ago(Date.now() - lastAt)}` : "",
    );
  };
  const tick = setInterval(showMeta, 1000);
  const stop = followTrending(
    window,
    k,
    (d) => {
      // The live list is the newest window's: a final of an older window, closed after the
      // newest had its first update, goes to the finals only.
      if (doc && d.windowStart < doc.windowStart) return;
      doc = d;
      lastAt = Date.now();
      const max = d.items[0]?.score ?? 0;
      const counts = countsOf(d.items);
      head.replaceChildren(
        h("th", {}, "#"),
        h("th", {}, "item"),
        h("th", {}, "score"),
        ...counts.map((c) => h("th", { class: "num" }, c)),
      );
      const rows = d.items.map((i) => {
        const moved = last.has(i.itemId) ? last.get(i.itemId) !== i.score : last.size > 0;
        return h(
          "tr",
          { class: moved ? "flash" : "", "data-item-id": i.itemId, "data-score": i.score },
          h("td", { class: "rank" }, i.rank),
          h("td", {}, titledItem(i)),
          h("td", {}, scoreCell(i.score, max, 1)),
          ...counts.map((c) => h("td", { class: "num" }, fmt.int(i[c] ?? 0))),
        );
      });
      last = new Map(d.items.map((i) => [i.itemId, i.score]));
      tbody.replaceChildren(...rows);
      table.style.display = d.items.length ? "" : "none";
      empty.style.display = d.items.length ? "none" : "";
      const w = Object.entries(d.weights ?? {}).filter(([, x]) => x > 0);
      weights.textContent = w.length
        ? `score = ${w.map(([type, x]) => `${type === "rating" ? "rating value" : type} × ${x}`).join(" + ")}`
        : "";
      weights.dataset.weights = w.map(([type, x]) => `${type}=${x}`).join(",");
      el.dataset.windowStart = d.windowStart ?? "";
      el.dataset.updates = String(Number(el.dataset.updates ?? 0) + 1);
      showMeta();
      onUpdate?.(d);
    },
    (s) => {
      state = s;
      showMeta();
    },
  );
  return {
    el,
    stop() {
      clearInterval(tick);
      stop();
    },
  };
}
