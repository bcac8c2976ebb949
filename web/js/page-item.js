// An item: its catalogue entry, what the popularity table knows, its place in trending, and items
// like it.
import { api } from "./api.js";
import { badge, card, fmt, h, titledItem, priceCell, scoreCell } from "./dom.js";
import { searchBox } from "./search.js";

export function itemPage(root, itemId) {
  root.append(
    h("h1", {}, "Items"),
    h(
      "p",
      { class: "sub" },
      "A product's catalogue entry, its popularity and the items shown beside it.",
    ),
    searchBox("items", itemId, "item id, e.g. 1004856"),
  );
  if (!itemId) return;
  const out = h("div", { id: "item-result" }, h("div", { class: "empty" }, "Loading…"));
  root.append(out);
  const id = encodeURIComponent(itemId);
  Promise.all([api(`/v1/items/${id}`), api(`/v1/items/${id}/similar?n=10`)]).then(
    ([item, similar]) => {
      const p = item.popularity;
      const facts = p
        ? h(
            "dl",
            { class: "facts" },
            h("dt", {}, "purchases, 7 days"),
            h("dd", {}, fmt.int(p.purchases)),
            h("dt", {}, "category"),
            h("dd", {}, p.category || "—"),
            h("dt", {}, "brand"),
            h("dd", {}, p.brand || "—"),
            h("dt", {}, "average price"),
            h("dd", {}, priceCell(p.averagePrice)),
          )
        : h("div", { class: "empty" }, "No purchases of this item within the popularity horizon.");
      const c = item.catalogue;
      const described = c
        ? h(
            "dl",
            { class: "facts", id: "catalogue" },
            h("dt", {}, "title"),
            h("dd", {}, c.title || "—"),
            h("dt", {}, "categories"),
            h("dd", {}, c.categories.length ? c.categories.join(", ") : "—"),
            h("dt", {}, "brand"),
            h("dd", {}, c.brand || "—"),
            h("dt", {}, "price"),
            h("dd", {}, c.price === null ? "—" : priceCell(c.price)),
            h("dt", {}, "labels"),
            h(
              "dd",
              {},
              c.labels.length ? c.labels.map((l) => h("span", { class: "label" }, l)) : "—",
            ),
            h("dt", {}, "shown in answers"),
            h("dd", {}, c.hidden ? h("span", { class: "hidden-flag" }, "hidden") : "yes"),
            h("dt", {}, "updated"),
            h("dd", {}, c.updatedAt ? c.updatedAt.replace("T", " ").slice(0, 19) : "—"),
          )
        : h("div", { class: "empty" }, "The catalogue knows nothing of this item yet.");
      const trend = h(
        "dl",
        { class: "facts" },
        ...item.trending.flatMap((t) => [
          h("dt", {}, t.window === "1h" ? "last hour" : "last 24 hours"),
          h(
            "dd",
            {},
            t.rank
              ? `#${t.rank} · score ${fmt.num(t.score, 1)} (${fmt.int(t.views)} views, ${fmt.int(t.clicks)} clicks)`
              : "not in the top list",
          ),
        ]),
      );
      const max = similar.items[0]?.score ?? 0;
      const rows = similar.items.map((i) =>
        h(
          "tr",
          { "data-item-id": i.itemId },
          h("td", { class: "rank" }, i.rank),
          h("td", {}, titledItem(i), h("div", { class: "explain" }, i.explanation)),
          h("td", {}, scoreCell(i.score, max, 1)),
          h("td", {}, i.category || "—", h("div", { class: "explain" }, i.brand || "")),
          h("td", { class: "num" }, priceCell(i.averagePrice)),
        ),
      );
      out.replaceChildren(
        h(
          "div",
          { class: "grid wide" },
          card(
            "Similar items",
            h("span", {}, badge(similar.basis)),
            similar.statusMessage
              ? h("div", { class: "note", style: "margin:0 0 10px" }, similar.statusMessage)
              : null,
            rows.length
              ? h(
                  "table",
                  { id: "similar" },
                  h(
                    "thead",
                    {},
                    h(
                      "tr",
                      {},
                      h("th", {}, "#"),
                      h("th", {}, "item and reason"),
                      h("th", {}, "score"),
                      h("th", {}, "category"),
                      h("th", { class: "num" }, "avg price"),
                    ),
                  ),
                  h("tbody", {}, rows),
                )
              : h("div", { class: "empty" }, "No similar items yet."),
          ),
          h(
            "div",
            { class: "grid", style: "margin:0" },
            card(c?.title ? c.title : `Item ${item.itemId}`, "catalogue", described),
            card(`Item ${item.itemId}`, "popularity", facts),
            card("Trending", "current windows", trend),
          ),
        ),
      );
    },
    (err) => out.replaceChildren(h("div", { class: "error" }, err.message)),
  );
}
