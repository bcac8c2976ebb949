// The pipeline: which stage is behind, throughput and lag over time, per partition detail.
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { card, fmt, h } from "./dom.js";
import { kpis, stageTable } from "./pipeline-view.js";

export function pipelinePage(root) {
  root.append(
    h("h1", {}, "Pipeline"),
    h(
      "p",
      { class: "sub" },
      "Each stage is one actor per partition reading its JetStream consumer. Lag = messages waiting for it; the stage with the most is the one holding the pipeline back.",
    ),
  );
  const top = h("div", {});
  const rateEl = h("div", { class: "chart" });
  const lagEl = h("div", { class: "chart" });
  const table = h("div", {}, h("div", { class: "empty" }, "Loading…"));
  const progress = h("span", {});
  root.append(
    top,
    h(
      "div",
      { class: "grid g2" },
      card("Records out per second", "by stage", rateEl),
      card("Consumer lag", "messages waiting, by stage", lagEl),
    ),
    card("Stages", progress, table),
  );
  let rate;
  let lag;
  const poll = async () => {
    const p = await api("/v1/pipeline");
    top.replaceChildren(
      p.slowest
        ? h(
            "div",
            { class: "callout", id: "slowest" },
            h("b", {}, `${p.slowest.stage}[${p.slowest.partition}] is furthest behind: `),
            p.slowest.why,
          )
        : h(
            "div",
            { class: "callout ok", id: "slowest" },
            "No stage is behind: every consumer has caught up.",
          ),
      kpis(p),
    );
    progress.textContent = `event time ${fmt.time(p.eventTime?.progress)}`;
    table.replaceChildren(
      p.stages.length
        ? stageTable(p)
        : h("div", { class: "empty" }, "No stage runs in this process (a gateway)."),
    );
    const names = p.stages.map((s) => s.stage);
    if (!rate && names.length) {
      rate = lineChart(rateEl, names, { yLabel: "records/s" });
      lag = lineChart(lagEl, names, { yLabel: "messages" });
      rate.names = names;
    }
    if (rate) {
      const t = Date.now() / 1000;
      const by = new Map(p.stages.map((s) => [s.stage, s]));
      rate.push(
        t,
        rate.names.map((n) => by.get(n)?.recordsOutPerSecond ?? 0),
      );
      lag.push(
        t,
        rate.names.map((n) => by.get(n)?.lag ?? 0),
      );
    }
  };
  poll().catch((err) => table.replaceChildren(h("div", { class: "error" }, err.message)));
  const t = setInterval(() => poll().catch(() => {}), 2000);
  return () => {
    clearInterval(t);
    rate?.destroy();
    lag?.destroy();
  };
}
