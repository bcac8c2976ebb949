/**
 * The flags that load tsx in this process (`--require …/tsx/dist/preflight.cjs`, `--import
 * …/tsx/dist/loader.mjs`), without any other node flag (`--cpu-prof`, say): what a child node
 * process needs to run this repo's TypeScript sources the way this one does.
 */
export function tsxFlags(): string[] {
  const out: string[] = [];
  const a = process.execArgv;
  for (let i = 0; i < a.length; i++) {
    const flag = a[i]!;
    const value = a[i + 1];
    if ((flag === "--require" || flag === "--import") && value?.includes("tsx")) {
      out.push(flag, value);
      i++;
    } else if (/^--(require|import)=.*tsx/.test(flag)) out.push(flag);
  }
  return out;
}
