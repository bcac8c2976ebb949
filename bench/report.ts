/** One row of the results table. */
export interface Row {
  step: string;
  figure: string;
  value: string;
  baseline: string;
  ratio: string;
  target: string;
}

/** What a step writes into: rows of the table, notes under it, and failures (exit code 1). */
export interface Report {
  row(r: Partial<Row> & Pick<Row, "step" | "figure" | "value">): void;
  note(text: string): void;
  /** A failed check: the run still completes, but exits non-zero. */
  fail(): void;
  /** Progress on stderr, with the time since the run started. */
  log(msg: string): void;
}

export const ratio = (a: number, b: number) =>
  Number.isFinite(a / b) ? `${(a / b).toFixed(2)}×` : "n/a";
export const verdict = (ok: boolean) => (ok ? "met" : "NOT met");
