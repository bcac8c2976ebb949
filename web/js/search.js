// The lookup box at the top of the user and item pages.
import { h } from "./dom.js";

export function searchBox(kind, value, placeholder) {
  const input = h("input", {
    type: "search",
    name: kind,
    value: value ?? "",
    placeholder,
    autocomplete: "off",
    spellcheck: "false",
  });
  const go = (e) => {
    e.preventDefault();
    const v = input.value.trim();
    if (v) location.hash = `#/${kind}/${encodeURIComponent(v)}`;
  };
  return h(
    "form",
    { class: "search", onsubmit: go },
    input,
    h("button", { type: "submit" }, "Look up"),
  );
}
