import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Tools that tests run, and the Debian package of each (`bash .ci/run` installs them). A test
 * that needs one fails naming it when it is missing, rather than skipping: a skip would pass a
 * run that never checked what the test is about.
 */
const PACKAGES: Record<string, string> = {
  chromium: "chromium",
  "docker-compose": "docker-compose",
  mount: "mount",
  "nats-server": "nats-server",
  openssl: "openssl",
  promtool: "prometheus",
};

/** Whether `bin` is a command on PATH, or an executable path. */
export const hasTool = (bin: string): boolean =>
  bin.includes("/") ? existsSync(bin) : spawnSync("sh", ["-c", `command -v ${bin}`]).status === 0;

/** Throws, naming the tool and its package, when `bin` is missing. */
export function needTool(bin: string, name = bin): void {
  if (!hasTool(bin))
    throw new Error(
      `${name} is not installed (${bin}): this test runs it (apt-get install ${PACKAGES[name] ?? name}; bash .ci/run installs it)`,
    );
}

/** Throws unless the tests run as root: mounting a small filesystem needs it (CI runs as root). */
export function needRoot(what: string): void {
  if (process.getuid?.() !== 0)
    throw new Error(
      `${what} needs root (it mounts a small tmpfs); run the suite as root, as CI does`,
    );
  needTool("mount");
}

/** Throws naming the data set when a test's log under ../shared/data is missing. */
export function needData(path: string): void {
  if (!existsSync(path))
    throw new Error(
      `${path} is missing: this test reads the shared logs beside the clone (../shared/data)`,
    );
}
