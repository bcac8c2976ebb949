// Charts with uPlot (served from its npm package, no CDN).
import uPlot from "/vendor/uplot.esm.js";

const palette = [
  "#4f46e5",
  "#0ea5e9",
  "#10b981",
  "#f59e0b",
  "#ef4444",
  "#8b5cf6",
  "#14b8a6",
  "#64748b",
];

function widthOf(el) {
  return Math.max(
    280,
    Math.floor(el.getBoundingClientRect().width || el.parentElement?.clientWidth || 600),
  );
}

/** A time-series line chart; `series` are names, `push(t, values)` appends a point. */
export function lineChart(el, series, { height = 220, keep = 150, yLabel = "" } = {}) {
  const data = [[], ...series.map(() => [])];
  const opts = {
    width: widthOf(el),
    height,
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      {
        stroke: "#6b7385",
        grid: { stroke: "#eef0f4" },
        space: 110,
        values: (_u, splits) => splits.map((s) => new Date(s * 1000).toTimeString().slice(0, 8)),
      },
      { stroke: "#6b7385", grid: { stroke: "#eef0f4" }, label: yLabel, size: 56 },
    ],
    series: [
      {},
      ...series.map((name, i) => ({
        label: name,
        stroke: palette[i % palette.length],
        width: 2,
        points: { show: false },
      })),
    ],
  };
  const plot = new uPlot(opts, data, el);
  const ro = new ResizeObserver(() => plot.setSize({ width: widthOf(el), height }));
  ro.observe(el);
  return {
    push(t, values) {
      data[0].push(t);
      values.forEach((v, i) => data[i + 1].push(v));
      if (data[0].length > keep) data.forEach((d) => d.shift());
      plot.setData(data);
    },
    destroy() {
      ro.disconnect();
      plot.destroy();
    },
  };
}

/** A bar chart of labelled values (categories on x). */
export function barChart(el, labels, values, { height = 200, color = "#4f46e5" } = {}) {
  const xs = labels.map((_, i) => i);
  const plot = new uPlot(
    {
      width: widthOf(el),
      height,
      legend: { show: false },
      cursor: { show: false },
      scales: {
        x: { time: false, range: [-0.6, labels.length - 0.4] },
        y: { range: (_u, _min, max) => [0, max * 1.15 || 1] },
      },
      axes: [
        {
          stroke: "#6b7385",
          grid: { show: false },
          splits: () => xs,
          values: (_u, splits) => splits.map((s) => labels[s] ?? ""),
        },
        { stroke: "#6b7385", grid: { stroke: "#eef0f4" }, size: 48 },
      ],
      series: [
        {},
        {
          label: "value",
          fill: color + "cc",
          stroke: color,
          paths: uPlot.paths.bars({ size: [0.55, 80] }),
          points: { show: false },
        },
      ],
    },
    [xs, values],
    el,
  );
  const ro = new ResizeObserver(() => plot.setSize({ width: widthOf(el), height }));
  ro.observe(el);
  return {
    destroy() {
      ro.disconnect();
      plot.destroy();
    },
  };
}
