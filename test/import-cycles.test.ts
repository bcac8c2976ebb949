import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, posix, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/*
 * The linter's import-x/no-cycle keeps value imports from forming circles, but it skips
 * `import type`. This walks every relative import and re-export, types included, and asks for
 * none: a type circle still hides which module is the lower one.
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const DIRS = ["actors", "bin", "connectors", "runtime", "state", "bench", "test"];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mts)$/.test(e.name)) out.push(relative(root, p).split("\\").join("/"));
  }
  return out;
}

const IMPORT = /(?:import|export)\s+(?:type\s+)?(?:[^"';]*?\s+from\s+)?["'](\.\.?\/[^"']+)["']/g;

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of DIRS.flatMap((d) => sources(join(root, d)))) {
    const to = new Set<string>();
    for (const m of readFileSync(join(root, file), "utf8").matchAll(IMPORT)) {
      const target = posix.normalize(posix.join(posix.dirname(file), m[1]!));
      const ts = target.replace(/\.js$/, ".ts");
      if (existsSync(join(root, ts))) to.add(ts);
    }
    g.set(file, [...to]);
  }
  return g;
}

/** Strongly connected components of more than one module (Tarjan). */
function circles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1) found.push(c.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

describe("imports", () => {
  it("form no circle, type imports included", () => {
    expect(circles(graph())).toEqual([]);
  });

  it("leave an actors/ folder only through its index", () => {
    const FOLDERS = ["contract", "host", "sources", "stages", "quality", "serving", "plan"];
    const folderOf = (f: string) => {
      const [top, sub] = f.split("/");
      return top === "actors" && FOLDERS.includes(sub!) ? sub : undefined;
    };
    const bad: string[] = [];
    for (const [file, to] of graph()) {
      for (const t of to) {
        const f = folderOf(t);
        if (f !== undefined && folderOf(file) !== f && !t.endsWith("/index.ts"))
          bad.push(`${file} -> ${t}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
