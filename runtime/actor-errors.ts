/** Why an actor refuses or ends: stopped, or failed with a cause. */

/** The actor no longer accepts or processes messages (stopped, draining, or stopped before start). */
export class ActorStoppedError extends Error {
  override readonly name = "ActorStoppedError";
  readonly actorId: string;
  constructor(actorId: string, message = `actor ${actorId} is stopped`) {
    super(message);
    this.actorId = actorId;
  }
}

/**
 * The actor failed; `cause` is what failed it. Also wraps non-Error failures for `closed()`. The
 * message says why (the cause's message): callers print `message` or `String(err)`, and "actor
 * watermark/0 failed" alone, in bench step 2, left nobody knowing why.
 */
export class ActorFailedError extends Error {
  override readonly name = "ActorFailedError";
  readonly actorId: string;
  constructor(actorId: string, options: { cause: unknown }) {
    super(`actor ${actorId} failed: ${reasonOf(options.cause)}`, options);
    this.actorId = actorId;
  }
}

/** A failure's cause as one line of text, whatever was thrown. */
function reasonOf(cause: unknown): string {
  if (cause instanceof Error) return cause.message || cause.name;
  if (typeof cause === "string") return cause;
  try {
    return JSON.stringify(cause) ?? String(cause);
  } catch {
    return String(cause);
  }
}
