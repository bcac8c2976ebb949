import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** A size-limited filesystem (tmpfs) that a test fills up and frees again. */
export interface SmallFs {
  readonly dir: string;
  /** Fills every free byte with a filler file (ENOSPC from then on). */
  fill(): Promise<void>;
  /** Removes the filler: the space is back. */
  free(): Promise<void>;
  /** Bytes available now. */
  available(): Promise<number>;
  /** Unmounts and removes the mount point. */
  cleanup(): Promise<void>;
}

/**
 * Mounts a tmpfs of `mb` MiB on a fresh temp dir. Needs root (CI runs as root); without it the
 * test fails saying so, it does not skip.
 */
export async function mountSmallFs(mb: number): Promise<SmallFs> {
  const dir = await mkdtemp(join(tmpdir(), "reco-small-fs-"));
  try {
    await run("mount", ["-t", "tmpfs", "-o", `size=${mb}m`, "tmpfs", dir]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `this test needs a size-limited filesystem: 'mount -t tmpfs' failed (run as root): ${(err as Error).message.split("\n")[0]}`,
    );
  }
  const filler = join(dir, "filler");
  return {
    dir,
    fill: async () => {
      // dd stops at ENOSPC with a non-zero exit: that is the point.
      await run("dd", ["if=/dev/zero", `of=${filler}`, "bs=64k"]).catch(() => undefined);
    },
    free: () => rm(filler, { force: true }),
    available: async () => {
      const { stdout } = await run("df", ["-B1", "--output=avail", dir]);
      return Number(stdout.trim().split("\n").pop());
    },
    cleanup: async () => {
      await run("umount", ["-l", dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
