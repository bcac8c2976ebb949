/**
 * Self and inclusive time of a V8 CPU profile (`--cpu-prof`), by function and by file, as shares
 * of the profiled thread's busy time (idle and "(program)" left out of the denominator).
 *
 *   npx tsx bench/profile-summary.ts FILE.cpuprofile [top=40] [--skip-ms=N] [--until-ms=N]
 *     [--match=TEXT]
 *
 * `--skip-ms` leaves out the first N ms (start-up), `--until-ms` all after N ms; `--match` lists
 * only functions or files whose name or path contains TEXT (inclusive time, recursion counted
 * once per sample); `--callers=TEXT` splits the self time of matching functions by their
 * nearest callers (four, or `--depth=N`); `--under=TEXT` counts only samples with a matching function on their stack
 * (shares stay of all busy time).
 * Step 2: `BENCH_STEPS=2 PARSE_PROCESS=0 BENCH_NODE_FLAGS="--cpu-prof --cpu-prof-dir=DIR"`.
 *
 * tsx compiles each .ts file with minified whitespace, so V8 places every function on line 1 of
 * its file and names arrow functions "": the file is compiled again here as tsx does (esbuild,
 * the same options, the same output) and its source map gives the line in the .ts file and,
 * for a nameless function, the start of that line. The source must be the one profiled.
 */
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { transformSync } from "esbuild";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const file = args.find((a) => !a.startsWith("--") && /\.(cpuprofile|heapprofile|json)$/.test(a));
if (!file)
  throw new Error("usage: profile-summary.ts FILE.cpuprofile [top] [--skip-ms=N] [--until-ms=N]");
const top = Number(args.find((a) => /^\d+$/.test(a)) ?? 40);
const skipMs = Number(args.find((a) => a.startsWith("--skip-ms="))?.slice(10) ?? 0);
const untilMs = Number(args.find((a) => a.startsWith("--until-ms="))?.slice(11) ?? Infinity);
const match = args.find((a) => a.startsWith("--match="))?.slice(8);
const callersOf = args.find((a) => a.startsWith("--callers="))?.slice(10);
/** Callers listed per stack with `--callers` (a deep one: a socket write reached from a flush). */
const depth = Number(args.find((a) => a.startsWith("--depth="))?.slice(8) ?? 4);
const under = args.find((a) => a.startsWith("--under="))?.slice(8);

const raw = JSON.parse(readFileSync(file, "utf8")) as Profile | HeapProfile;
/**
 * A sampling heap profile (`--heap-prof`, or HeapProfiler.stopSampling's `profile`): bytes
 * allocated by function, as a CPU profile's samples with bytes for microseconds, so every list
 * below reads as bytes (shares of all bytes sampled; `ms` columns are kB).
 */
interface HeapNode {
  id: number;
  callFrame: CallFrame;
  selfSize: number;
  children: HeapNode[];
}
interface HeapProfile {
  head: HeapNode;
}
const p: Profile =
  "head" in raw
    ? (() => {
        const nodes: ProfileNode[] = [];
        const samples: number[] = [];
        const timeDeltas: number[] = [];
        const walk = (n: HeapNode) => {
          nodes.push({ id: n.id, callFrame: n.callFrame, children: n.children.map((c) => c.id) });
          if (n.selfSize > 0) {
            samples.push(n.id);
            timeDeltas.push(n.selfSize);
          }
          n.children.forEach(walk);
        };
        walk(raw.head);
        return { nodes, startTime: 0, samples, timeDeltas };
      })()
    : raw;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const short = (url: string) =>
  url
    .replace(/^file:\/\//, "")
    .replace(/^.*?\/(node_modules\/)/, "$1")
    .replace(/^.*?\/wt-[^/]+\//, "");
/** Source maps of the .ts files as tsx compiled them, and their lines. */
const maps = new Map<string, { map: SourceMap; lines: string[] } | null>();
function tsMap(url: string) {
  let m = maps.get(url);
  if (m === undefined) {
    m = null;
    try {
      const path = url.replace(/^file:\/\//, "");
      const src = readFileSync(path, "utf8");
      const out = transformSync(src, {
        target: `node${process.versions.node}`,
        loader: "ts",
        sourcemap: true,
        minifyWhitespace: true,
        keepNames: true,
        format: "esm",
        sourcefile: path,
      });
      m = { map: new SourceMap(JSON.parse(out.map)), lines: src.split("\n") };
    } catch {
      // not a file of this tree: positions as V8 gave them
    }
    maps.set(url, m);
  }
  return m;
}
const fnKeys = new Map<string, string>();
function fnKey(f: CallFrame): string {
  const raw = `${f.url}:${f.lineNumber}:${f.columnNumber}:${f.functionName}`;
  let k = fnKeys.get(raw);
  if (k === undefined) {
    k = `${f.functionName || "(anon)"} ${short(f.url)}:${f.lineNumber + 1}`;
    const m = f.url.endsWith(".ts") ? tsMap(f.url) : null;
    const e = m?.map.findEntry(f.lineNumber, f.columnNumber);
    if (m && e && "originalLine" in e) {
      const text = (m.lines[e.originalLine] ?? "").trim().slice(0, 60);
      k = `${f.functionName || text} ${short(f.url)}:${e.originalLine + 1}`;
    }
    fnKeys.set(raw, k);
  }
  return k;
}
const IDLE = new Set(["(idle)", "(program)"]);

const self = new Map<string, number>();
const callers = new Map<string, number>();
const selfFile = new Map<string, number>();
const incl = new Map<string, number>();
let busy = 0;
let total = 0;
let t = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  if (t / 1000 < skipMs || t / 1000 >= untilMs) continue;
  const node = byId.get(p.samples[i]!)!;
  total += dt;
  if (IDLE.has(node.callFrame.functionName)) continue;
  busy += dt;
  if (under && !onStack(node.id, under)) continue;
  const k = fnKey(node.callFrame);
  self.set(k, (self.get(k) ?? 0) + dt);
  const fk = short(node.callFrame.url) || node.callFrame.functionName;
  selfFile.set(fk, (selfFile.get(fk) ?? 0) + dt);
  if (callersOf && k.includes(callersOf)) {
    const path: string[] = [];
    for (let id = parent.get(node.id); id !== undefined && path.length < depth; id = parent.get(id))
      path.push(fnKey(byId.get(id)!.callFrame));
    const c = path.join("  <  ");
    callers.set(c, (callers.get(c) ?? 0) + dt);
  }
  const seen = new Set<string>();
  for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
    const f = byId.get(id)!.callFrame;
    for (const key of [fnKey(f), `file ${short(f.url)}`]) {
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + dt);
    }
  }
}

function onStack(id: number | undefined, text: string): boolean {
  for (; id !== undefined; id = parent.get(id))
    if (fnKey(byId.get(id)!.callFrame).includes(text)) return true;
  return false;
}

const pct = (v: number) => ((100 * v) / busy).toFixed(1).padStart(5) + "%";
const list = (title: string, m: Map<string, number>, filter = (_: string) => true) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m]
    .filter(([k]) => filter(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top))
    console.log(`${pct(v)}  ${(v / 1000).toFixed(0).padStart(7)} ms  ${k}`);
};
console.log(
  `${file}: busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled` +
    (skipMs ? ` (first ${skipMs} ms left out)` : "") +
    (untilMs < Infinity ? ` (after ${untilMs} ms left out)` : ""),
);
if (callersOf) {
  list(`self time of ${callersOf}, by callers`, callers);
} else if (match) {
  list(`inclusive, matching ${match}`, incl, (k) => k.includes(match));
} else {
  list("self, by function", self);
  list("self, by file", selfFile);
  list("inclusive, by file", incl, (k) => k.startsWith("file "));
}
