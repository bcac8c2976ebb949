// Pipeline status pieces shared by the overview and the pipeline page.
import { fmt, h, kpi } from "./dom.js";

export function kpis(p) {
  const e = p.events ?? {};
  const slow = p.slowest;
  return h(
    "div",
    { class: "grid g5", id: "kpis" },
    kpi("events in", `${fmt.int(e.inPerSecond)}/s`, `${fmt.int(e.in)} read by parse`),
    kpi("accepted", fmt.int(e.accepted), `${fmt.int(e.duplicates)} duplicates dropped`),
    kpi(
      "dead letters",
      fmt.int(e.deadLettered),
      `bad ratio ${fmt.pct(e.badRatio)} (last minute)`,
      e.badRatioAlert,
    ),
    kpi("late events", fmt.int(e.late), "behind the watermark"),
    kpi(
      "slowest stage",
      slow ? `${slow.stage}[${slow.partition}]` : "none behind",
      slow ? `${fmt.int(slow.lag)} messages waiting` : "every consumer caught up",
    ),
  );
}

/** Stage rows with each partition's lag as a small heat strip. */
export function stageTable(p) {
  const parts = Math.max(0, ...p.stages.map((s) => s.partitions.length));
  const maxLag = Math.max(1, ...p.stages.flatMap((s) => s.partitions.map((x) => x.lag)));
  return h(
    "table",
    { id: "stages" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "stage"),
        h(
          "th",
          { class: "num", title: "input messages: events for parse, hop batches after it" },
          "msgs in/s",
        ),
        h("th", { class: "num" }, "records out/s"),
        h("th", { class: "num" }, "lag"),
        h("th", { title: "event-time progress, least over partitions" }, "event time"),
        h("th", {}, `lag per partition (0…${Math.max(0, parts - 1)})`),
        h("th", { class: "num" }, "restarts"),
        h("th", { class: "num" }, "dead letters"),
        h("th", { class: "num" }, "late"),
      ),
    ),
    h(
      "tbody",
      {},
      p.stages.map((s) =>
        h(
          "tr",
          { "data-stage": s.stage },
          h(
            "td",
            {},
            h("b", {}, s.stage),
            p.slowest?.stage === s.stage
              ? h("span", { class: "badge TRENDING", style: "margin-left:8px" }, "slowest")
              : null,
          ),
          h("td", { class: "num" }, fmt.num(s.messagesInPerSecond, 1)),
          h("td", { class: "num" }, fmt.num(s.recordsOutPerSecond, 1)),
          h("td", { class: `num lagcell${s.lag > 0 ? " hot" : ""}` }, fmt.int(s.lag)),
          h("td", { class: "explain" }, eventTime(s.eventTime, p.eventTime?.progress)),
          h(
            "td",
            {},
            h(
              "div",
              { style: "display:flex;gap:3px" },
              s.partitions.map((x) =>
                h("span", {
                  title: `partition ${x.partition}: lag ${x.lag}, position ${x.position}, event time ${x.eventTime ?? "none"}, ${fmt.num(x.messagesInPerSecond, 1)} msgs in/s, mailbox ${x.mailbox}`,
                  style: `width:14px;height:14px;border-radius:3px;background:${heat(x.lag / maxLag)}`,
                }),
              ),
            ),
          ),
          h("td", { class: "num" }, fmt.int(s.restarts)),
          h("td", { class: "num" }, fmt.int(s.deadLetters)),
          h("td", { class: "num" }, fmt.int(s.late)),
        ),
      ),
    ),
  );
}

/** A stage's event time, and how far it trails parse's progress. */
function eventTime(at, progress) {
  if (!at) return "—";
  const behind = progress ? Date.parse(progress) - Date.parse(at) : 0;
  return behind >= 60_000
    ? `${fmt.time(at)} (${fmt.int(behind / 60_000)} min behind)`
    : fmt.time(at);
}

function heat(x) {
  if (!(x > 0)) return "#e3f7ef";
  const a = 0.25 + 0.75 * Math.min(1, x);
  return `rgba(214, 59, 59, ${a.toFixed(2)})`;
}
