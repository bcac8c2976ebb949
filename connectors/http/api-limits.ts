/** Events in one request at most. */
export const MAX_EVENTS_PER_REQUEST = 1000;

/** A request body at most (1,000 events of up to ~6 KB each). */
export const MAX_EVENTS_BODY_BYTES = 8 * 1024 * 1024;
