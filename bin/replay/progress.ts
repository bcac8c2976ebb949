import cliProgress from "cli-progress";

/**
 * How far a replay got, shown while it runs: a replay of millions of rows takes minutes, so the
 * reader sees a bar on a terminal, or a line every 10 s in a log, rather than silence.
 */

/** The counts of the summary so far that progress is drawn from. */
export interface ProgressCounts {
  readonly rows: number;
  readonly sent: number;
  readonly rejected: number;
}

export interface ReplayProgress {
  /** A line for the reader: above the bar on a terminal (which would draw over it), else on `out`. */
  log(text: string): void;
  /** Sending starts: events/s count from now, and `bytesRead` says how much text was read. */
  begin(bytesRead: () => number): void;
  /** The bar on a terminal, a line every 10 s otherwise: sent, to go, events/s, time left. */
  update(counts: ProgressCounts): void;
  stop(): void;
}

/**
 * Progress against `size` bytes of text on `out`: a bar when `bar` is true, or by default when
 * `out` is a terminal; nothing at all without `out`.
 */
export function createProgress(
  out: (NodeJS.WritableStream & { isTTY?: boolean }) | undefined,
  size: number,
  bar: boolean | undefined,
): ReplayProgress {
  const showBar = out !== undefined && (bar ?? out.isTTY === true);
  const multibar = showBar
    ? new cliProgress.MultiBar(
        {
          stream: out,
          format:
            "{bar} {percentage}% | {sent} sent, ~{pending} to go | {rate} events/s | {rejected} rejected | ETA {eta_formatted}",
          hideCursor: true,
          clearOnComplete: false,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const single = multibar?.create(size, 0, { sent: 0, rejected: 0, rate: 0, pending: "?" });
  // Without a terminal: a line every 10 s (a replay of millions of rows takes minutes).
  const logEveryMs = 10_000;
  let loggedAt = performance.now();
  let sendStart = performance.now();
  let bytesRead = () => 0;

  return {
    log(text) {
      if (multibar) multibar.log(`${text}\n`);
      else out?.write(`${text}\n`);
    },
    begin(read) {
      sendStart = performance.now();
      bytesRead = read;
    },
    update(counts) {
      const read = Math.min(bytesRead(), size);
      const s = (performance.now() - sendStart) / 1000;
      const perSec = s > 0 ? counts.sent / s : 0;
      // Events to go: rows read and not sent yet (the sort holds them), and the rows of the part
      // of the file not read yet, at the rows per byte so far.
      const unread = read > 0 ? (counts.rows * (size - read)) / read : 0;
      const toGo = Math.max(0, Math.round(counts.rows - counts.sent - counts.rejected + unread));
      single?.update(read, {
        sent: counts.sent,
        rejected: counts.rejected,
        rate: Math.round(perSec).toLocaleString("en-US"),
        pending: toGo.toLocaleString("en-US"),
      });
      if (single || !out || performance.now() - loggedAt < logEveryMs) return;
      loggedAt = performance.now();
      const left = perSec > 0 ? `, about ${Math.ceil(toGo / perSec)} s left` : "";
      out.write(
        `replay: ${Math.floor((100 * read) / Math.max(1, size))}% read, ${counts.sent.toLocaleString("en-US")} events sent, ~${toGo.toLocaleString("en-US")} to go, ${Math.round(perSec).toLocaleString("en-US")} events/s${left}\n`,
      );
    },
    stop() {
      multibar?.stop();
    },
  };
}
