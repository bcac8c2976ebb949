/**
 * A small SVG line chart for the bench (no dependency): freshness p50 / p99 against ingest rate,
 * with the DESIGN §8 target as a dashed line. Log scale on the latency axis, since a rate the
 * pipeline cannot sustain turns milliseconds into seconds.
 */

export interface Series {
  name: string;
  color: string;
  /** [x, y]; y may be undefined (nothing measured at that x): the line breaks there. */
  points: [number, number | undefined][];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Horizontal reference line (e.g. the target), with its label. */
  reference?: { y: number; label: string };
  /** A note under the chart (load, date, what the points mean). */
  caption?: string;
}

const W = 720;
const H = 440;
const M = { left: 72, right: 24, top: 48, bottom: 96 };

const esc = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (v: number) =>
  v >= 1000 ? `${+(v / 1000).toFixed(1)}k` : v >= 10 ? v.toFixed(0) : +v.toFixed(1) + "";

/** 1, 2, 5 × powers of ten spanning [lo, hi]. */
function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++)
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
  return out;
}

export function lineChartSvg(o: ChartOptions): string {
  const xs = o.series.flatMap((s) => s.points.map(([x]) => x));
  const ys = o.series.flatMap((s) =>
    s.points.flatMap(([, y]) => (y !== undefined && y > 0 ? [y] : [])),
  );
  if (o.reference) ys.push(o.reference.y);
  const xMin = Math.min(...xs, 0);
  const xMax = Math.max(...xs, 1);
  const yLo = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...ys, 10))));
  const yHi = 10 ** Math.ceil(Math.log10(Math.max(...ys, 100)));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number) => M.left + ((x - xMin) / (xMax - xMin || 1)) * pw;
  const sy = (y: number) =>
    M.top + ph - ((Math.log10(y) - Math.log10(yLo)) / (Math.log10(yHi) - Math.log10(yLo))) * ph;

  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(o.title)}</text>`,
  );
  // Grid and axes.
  for (const t of logTicks(yLo, yHi)) {
    const y = sy(t).toFixed(1);
    parts.push(
      `<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`,
    );
  }
  const xTicks = [...new Set(xs)].sort((a, b) => a - b);
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(
      `<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + ph}" stroke="#f0f0f0"/>`,
      `<text x="${x}" y="${M.top + ph + 16}" text-anchor="middle">${fmt(t)}</text>`,
    );
  }
  parts.push(
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${W - M.right}" y2="${M.top + ph}" stroke="#333"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${M.top + ph + 36}" text-anchor="middle">${esc(o.xLabel)}</text>`,
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yLabel)}</text>`,
  );
  if (o.reference) {
    const y = sy(o.reference.y).toFixed(1);
    parts.push(
      `<line x1="${M.left}" y1="${y}" x2="${W - M.right}" y2="${y}" stroke="#c00" stroke-dasharray="6 4"/>`,
      `<text x="${W - M.right - 4}" y="${Number(y) - 6}" text-anchor="end" fill="#c00">${esc(o.reference.label)}</text>`,
    );
  }
  // Series: polylines broken where a point is missing, a dot per point, a legend entry.
  o.series.forEach((s, k) => {
    let run: string[] = [];
    const flush = () => {
      if (run.length > 1)
        parts.push(
          `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${run.join(" ")}"/>`,
        );
      run = [];
    };
    for (const [x, y] of s.points) {
      if (y === undefined || !(y > 0)) {
        flush();
        continue;
      }
      const p = `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      run.push(p);
      parts.push(
        `<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${esc(
          `${s.name} at ${fmt(x)}: ${y.toFixed(1)}`,
        )}</title></circle>`,
      );
    }
    flush();
    const ly = M.top + 8 + k * 18;
    parts.push(
      `<line x1="${M.left + 12}" y1="${ly}" x2="${M.left + 36}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${M.left + 42}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`,
    );
  });
  if (o.caption) {
    const words = o.caption.split(" ");
    let line = "";
    let y = H - 34;
    for (const w of words) {
      if ((line + " " + w).length > 110) {
        parts.push(`<text x="${M.left}" y="${y}" fill="#555" font-size="11">${esc(line)}</text>`);
        line = w;
        y += 14;
      } else line = line ? `${line} ${w}` : w;
    }
    if (line)
      parts.push(`<text x="${M.left}" y="${y}" fill="#555" font-size="11">${esc(line)}</text>`);
  }
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
