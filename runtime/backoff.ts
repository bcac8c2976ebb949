export interface BackoffOptions {
  /** Delay before the first retry, in ms. */
  delay: number;
  /** Ceiling for the doubled delay, in ms. */
  maxDelay: number;
}

/**
 * Exponential backoff without jitter: `delay * 2^attempt`, capped at `maxDelay`. `attempt` counts
 * from 0 (the first retry waits `delay`). Deterministic on purpose so tests can assert exact delays.
 */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  return Math.min(options.delay * 2 ** Math.max(0, attempt), options.maxDelay);
}
