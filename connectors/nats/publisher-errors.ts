/** How a publish fails: rejected by the stream, no stream, no PubAck in time, publisher closed. */

/** The stream rejected a publish; `description` is the server's text. */
export class JetStreamPublishError extends Error {
  override name = "JetStreamPublishError";
  constructor(
    readonly subject: string,
    readonly description: string,
    readonly code?: number,
    readonly errCode?: number,
    options?: ErrorOptions,
  ) {
    super(`publish to "${subject}" failed: ${description}`, options);
  }
}

/** Nothing answered the publish: no stream is bound to the subject (a 503 "no responders" status). */
export class NoStreamError extends JetStreamPublishError {
  override name = "NoStreamError";
  constructor(subject: string) {
    super(subject, "no stream is bound to this subject (no responders)", 503);
  }
}

/** No PubAck arrived in time (after all retries, if the message had a `msgId`). */
export class PublishTimeoutError extends JetStreamPublishError {
  override name = "PublishTimeoutError";
  constructor(subject: string, timeoutMs: number, attempts: number) {
    super(
      subject,
      `no PubAck within ${timeoutMs} ms (${attempts} attempt${attempts === 1 ? "" : "s"}); ` +
        `the message may or may not be stored`,
    );
  }
}

/** The publisher was closed, or its connection closed, before the message was acked. */
export class PublisherClosedError extends Error {
  override name = "PublisherClosedError";
}

/** A thrown value as the publish error of `subject`. */
export function asError(err: unknown, subject: string): Error {
  if (err instanceof Error)
    return new JetStreamPublishError(subject, err.message, undefined, undefined, { cause: err });
  return new JetStreamPublishError(subject, String(err));
}
