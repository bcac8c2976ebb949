/** At most this many characters in a user or item id. */
export const MAX_ID_LENGTH = 128;

/** A request field failed validation; the message names the field and the rejected value. */
export class InvalidArgumentError extends Error {
  override name = "InvalidArgumentError";
  constructor(
    readonly field: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** A user or item id: not empty, not blank (as for events, DESIGN §2), at most 128 chars. */
export function validateId(field: string, value: string): string {
  if (value.length === 0) throw new InvalidArgumentError(field, `${field} must not be empty`);
  if (value.trim().length === 0)
    throw new InvalidArgumentError(field, `${field} must not be blank (only white space)`);
  if (value.length > MAX_ID_LENGTH) {
    throw new InvalidArgumentError(
      field,
      `${field} must be at most ${MAX_ID_LENGTH} characters, got ${value.length}`,
    );
  }
  return value;
}
