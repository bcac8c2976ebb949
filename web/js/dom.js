// Small DOM and formatting helpers shared by the pages.

/** Builds an element: h("td", { class: "num" }, "12"). Strings are text, never HTML. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const fmt = {
  int: (n) => new Intl.NumberFormat("en").format(Math.round(n ?? 0)),
  num: (n, d = 2) =>
    new Intl.NumberFormat("en", { maximumFractionDigits: d, minimumFractionDigits: 0 }).format(
      n ?? 0,
    ),
  // Always to the cent: "$177.20", not "$177.2".
  price: (n) =>
    n > 0
      ? `$${new Intl.NumberFormat("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(n)}`
      : "—",
  // Always one decimal: "4.0 %" beside "1.8 %" in a column, not "4 %".
  pct: (x) =>
    `${new Intl.NumberFormat("en", { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format((x ?? 0) * 100)} %`,
  time: (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "—"),
  hour: (iso) => (iso ? new Date(iso).toISOString().slice(11, 16) : "—"),
  ago: (ms) => (ms < 1500 ? "just now" : `${Math.round(ms / 1000)} s ago`),
};

/**
 * A quality figure with the cases it rests on, "42.1 % (318 users)"; below the minimum the API
 * serves (docs/CONSOLE.md) no number at all: "too few users (7 < 30)".
 */
export function counted(text, cases, min, noun, enough = cases >= min) {
  return enough
    ? h(
        "span",
        { class: "counted", title: `rests on ${fmt.int(cases)} ${noun}` },
        text,
        h("span", { class: "cases" }, ` (${fmt.int(cases)} ${noun})`),
      )
    : h(
        "span",
        {
          class: "too-few",
          title: `a figure needs at least ${fmt.int(min)} ${noun} to be shown (docs/CONSOLE.md)`,
        },
        `too few ${noun} (${fmt.int(cases)} < ${fmt.int(min)})`,
      );
}

/** An average price, or a dash saying why there is none. */
export function priceCell(n) {
  return n > 0
    ? h("span", { class: "price" }, fmt.price(n))
    : h("span", { class: "no-price", title: "no event of this item carried a price" }, "—");
}

/** A score bar relative to the list's top score. */
export function scoreCell(score, max, digits = 3) {
  const pct = max > 0 ? Math.max(2, Math.min(100, (score / max) * 100)) : 0;
  return h(
    "div",
    { class: "scorecell" },
    h("div", { class: "bar" }, h("span", { style: `width:${pct}%` })),
    h("span", { class: "n mono" }, fmt.num(score, digits)),
  );
}

export function badge(text, cls = text) {
  return h("span", { class: `badge ${cls}` }, text.replaceAll("_", " ").toLowerCase());
}

export function card(title, meta, ...body) {
  return h(
    "section",
    { class: "card" },
    h(
      "div",
      { class: "card-head" },
      h("h2", {}, title),
      meta ? h("span", { class: "meta" }, meta) : null,
    ),
    ...body,
  );
}

export function kpi(label, value, hint, alert = false) {
  return h(
    "div",
    { class: `card kpi${alert ? " alert" : ""}` },
    h("div", { class: "label" }, label),
    h("div", { class: "value" }, value),
    hint ? h("div", { class: "hint" }, hint) : null,
  );
}

export function placeholder(title, text) {
  return h(
    "section",
    { class: "card placeholder" },
    h("div", { class: "card-head" }, h("h2", {}, title), h("span", { class: "meta" }, "coming")),
    h("div", { class: "empty" }, text),
  );
}

export const itemLink = (id) =>
  h("a", { href: `#/items/${encodeURIComponent(id)}`, class: "mono" }, id);

/** An item's link with its catalogue title and labels beside it, when the answer has them. */
export const titledItem = (i) =>
  h(
    "span",
    { class: "titled" },
    itemLink(i.itemId),
    i.title ? h("span", { class: "item-title" }, i.title) : null,
    ...(i.labels ?? []).map((l) => h("span", { class: "label" }, l)),
  );
