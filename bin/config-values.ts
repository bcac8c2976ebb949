import { accessSync, closeSync, constants, openSync, readSync, statSync } from "node:fs";
import { EVENT_TYPES, type EventType } from "../actors/contract/index.js";
import type { TrendingWeights } from "../actors/stages/index.js";
import { parseArms, type Arm } from "../actors/quality/index.js";
import { SETTINGS, type Setting, type SettingName } from "./config-settings.js";

/** Reading and validating one setting's value: numbers, enums, files and the composite forms. */

/** Raised at start when a setting is invalid: names the setting, the value and the expected form. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads settings from flags (first) and the environment, each checked against its entry. */
export function createReader(
  env: Record<string, string | undefined>,
  flags: Record<string, string | undefined>,
) {
  const raw = (name: SettingName): string | undefined => {
    const s: Setting = SETTINGS[name];
    const v = flags[s.env] ?? env[s.env];
    return v === undefined || v === "" ? s.default : v;
  };
  const num = (name: SettingName): number => {
    const s: Setting = SETTINGS[name];
    const v = raw(name) ?? "";
    const n = Number(v);
    const expected =
      s.kind === "port"
        ? "a port number from 0 to 65535"
        : s.kind === "number"
          ? "a number"
          : s.kind === "ms"
            ? "a whole number of milliseconds"
            : "a whole number";
    const isWhole = s.kind !== "number";
    if (
      !/^-?\d+(\.\d+)?$/.test(v.trim()) ||
      !Number.isFinite(n) ||
      (isWhole && !Number.isInteger(n))
    )
      throw new ConfigError(`${s.env}=${JSON.stringify(v)} is not valid: expected ${expected}`);
    const min = s.kind === "port" ? 0 : s.min;
    const max = s.kind === "port" ? 65535 : s.max;
    if ((min !== undefined && n < min) || (max !== undefined && n > max))
      throw new ConfigError(
        `${s.env}=${v} is out of range: expected ${expected}` +
          (s.kind === "port" ? "" : ` from ${min ?? "-inf"} to ${max ?? "inf"}`),
      );
    return n;
  };
  const str = (name: SettingName): string | undefined => {
    const s: Setting = SETTINGS[name];
    const v = raw(name);
    if (s.kind === "enum" && v !== undefined && !s.values?.includes(v))
      throw new ConfigError(
        `${s.env}=${JSON.stringify(v)} is not valid: expected one of ${s.values?.join(", ")}`,
      );
    if (s.kind === "file" && v !== undefined) {
      const problem = fileProblem(v);
      if (problem !== undefined)
        throw new ConfigError(
          `${s.env}=${JSON.stringify(v)} is not valid: expected the path of a readable file (${problem})`,
        );
    }
    return v;
  };
  const together = (a: SettingName, b: SettingName, what: string) => {
    if ((str(a) === undefined) !== (str(b) === undefined))
      throw new ConfigError(
        `${SETTINGS[a].env} and ${SETTINGS[b].env} must be set together (${what}); only ${
          SETTINGS[str(a) === undefined ? b : a].env
        } is set`,
      );
  };
  return { raw, num, str, together };
}

export type Reader = ReturnType<typeof createReader>;

/** What an e-commerce shop's trending counts by default: a purchase says more than a view. */
export const ECOMMERCE_CART_WEIGHT = 3;
export const ECOMMERCE_PURCHASE_WEIGHT = 5;

/**
 * TRENDING_WEIGHTS ("view=1,click=2,cart=3,purchase=5") when set; otherwise views and clicks by
 * the older two settings TRENDING_VIEW_WEIGHT and TRENDING_CLICK_WEIGHT (1 and 2), which stay
 * accepted, with carts 3 and purchases 5 (TRENDING_WEIGHTS wins when both are set). A type
 * without a weight does not count.
 */
export function trendingWeights(
  text: string | undefined,
  view: number,
  click: number,
): TrendingWeights {
  if (text === undefined)
    return { view, click, cart: ECOMMERCE_CART_WEIGHT, purchase: ECOMMERCE_PURCHASE_WEIGHT };
  const bad = (why: string) =>
    new ConfigError(
      `TRENDING_WEIGHTS=${JSON.stringify(text)} is not valid: ${why}; expected type=weight pairs ` +
        `separated by commas, types among ${EVENT_TYPES.join(", ")}, weights numbers >= 0`,
    );
  const weights: TrendingWeights = {};
  for (const pair of text.split(",")) {
    const m = /^\s*([a-z_]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(pair);
    if (!m) throw bad(`${JSON.stringify(pair.trim())} is not type=weight`);
    const type = m[1] as EventType;
    if (!EVENT_TYPES.includes(type)) throw bad(`unknown event type ${JSON.stringify(type)}`);
    if (type in weights) throw bad(`${type} is given twice`);
    weights[type] = Number(m[2]);
  }
  return weights;
}

/** WEB_CORS_ORIGINS: `*`, or origins such as `https://shop.example` (scheme, host, port). */
export function corsOrigins(value: string | undefined): string[] {
  if (value === undefined) return [];
  const origins = value
    .split(",")
    .map((o) => o.trim())
    .filter((o) => o !== "");
  for (const o of origins)
    if (o !== "*" && !/^https?:\/\/[^\s/]+$/.test(o))
      throw new ConfigError(
        `WEB_CORS_ORIGINS=${JSON.stringify(value)} is not valid: expected * or comma-separated origins like https://shop.example:8443 (no path), got ${JSON.stringify(o)}`,
      );
  return origins;
}

/** Whether the file starts with the header of MovieLens movies.csv. */
export function isMoviesCsv(path: string): boolean {
  const buf = Buffer.alloc(256);
  const fd = openSync(path, "r");
  try {
    const n = readSync(fd, buf, 0, buf.length, 0);
    const first =
      buf
        .toString("utf8", 0, n)
        .replace(/^\uFEFF/, "")
        .split(/\r?\n/)[0] ?? "";
    return (
      /^\d+\|[^|]*\|/.test(first) ||
      first
        .split(",")
        .map((c) => c.trim().replace(/^"|"$/g, ""))
        .join(",") === "movieId,title,genres"
    );
  } finally {
    closeSync(fd);
  }
}

/** Why `path` is not a readable regular file, or undefined when it is. */
export function fileProblem(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return "not a regular file";
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "no such file";
    if (code === "EACCES") return "permission denied";
    return code ?? String(err);
  }
}

/** Masks the user-info part of every URL in a list (up to the last `@` before the host). */
export function redactUrl(urls: string): string {
  return urls.replace(/\/\/[^/,\s]*@/g, "//***@");
}

/** ARMS (actors/quality/arms.ts), checked at start: the message names the setting, the arm and the field. */
export function armsSetting(v: string | undefined): { arms?: Arm[] } {
  if (v === undefined || v.trim() === "") return {};
  try {
    return { arms: parseArms(v) };
  } catch (err) {
    throw new ConfigError(`ARMS is not valid: ${(err as Error).message}`);
  }
}

/** API_KEYS: comma-separated keys, each at least 16 characters without spaces. */
export function apiKeys(value: string | undefined): string[] {
  if (value === undefined) return [];
  const keys = value
    .split(",")
    .map((k) => k.trim())
    .filter((k) => k !== "");
  for (const k of keys)
    if (k.length < 16 || /\s/.test(k))
      throw new ConfigError(
        `API_KEYS is not valid: each key must be at least 16 characters without spaces (a key of ${k.length} characters was given)`,
      );
  return keys;
}
