// The console: a hash router over a handful of pages, each a function that renders into <main>
// and returns its cleanup (closing event streams, timers and charts).
import { api } from "./api.js";
import { fmt } from "./dom.js";
import { overviewPage } from "./page-overview.js";
import { userPage } from "./page-user.js";
import { itemPage } from "./page-item.js";
import { trendingPage } from "./page-trending.js";
import { pipelinePage } from "./page-pipeline.js";
import { qualityPage } from "./page-quality.js";

const routes = [
  [/^#?\/?$/, "overview", () => overviewPage],
  [
    /^#\/users(?:\/(.+))?$/,
    "users",
    (m) => (root) => userPage(root, m[1] && decodeURIComponent(m[1])),
  ],
  [
    /^#\/items(?:\/(.+))?$/,
    "items",
    (m) => (root) => itemPage(root, m[1] && decodeURIComponent(m[1])),
  ],
  [/^#\/trending$/, "trending", () => trendingPage],
  [/^#\/pipeline$/, "pipeline", () => pipelinePage],
  [/^#\/quality$/, "quality", () => qualityPage],
];

let cleanup = () => {};
function navigate() {
  cleanup();
  const root = document.getElementById("view");
  root.replaceChildren();
  const hash = location.hash || "#/";
  for (const [re, nav, page] of routes) {
    const m = re.exec(hash);
    if (!m) continue;
    for (const a of document.querySelectorAll("nav a"))
      a.classList.toggle("active", a.dataset.nav === nav);
    cleanup = page(m)(root) ?? (() => {});
    window.scrollTo(0, 0);
    return;
  }
  location.hash = "#/";
}

/** The header's status: ready or not, and the event time the pipeline has reached. */
async function status() {
  const el = document.getElementById("status");
  try {
    const p = await api("/v1/pipeline");
    el.className = `status ${p.ready ? "ok" : ""}`;
    el.lastChild.textContent = p.ready
      ? `live · event time ${fmt.time(p.eventTime?.progress)}`
      : "starting…";
  } catch {
    el.className = "status down";
    el.lastChild.textContent = "not reachable";
  }
}

window.addEventListener("hashchange", navigate);
navigate();
status();
setInterval(status, 5000);
