/** The one turn of the event loop in which every publisher of the process sends what is due. */

/**
 * One setImmediate for every publisher of the process: the publishes of all of them in a turn
 * leave in one socket write (nats.js flushes its buffer once per microtask checkpoint, and each
 * setImmediate callback ends with one), not one write per publisher. A stage instance has its
 * own publisher, and dozens of them flush in the same turn.
 */
const dueSenders = new Set<() => void>();
let sendScheduled = false;
const sendDue = (): void => {
  sendScheduled = false;
  const senders = [...dueSenders];
  dueSenders.clear();
  let failure: { error: unknown } | undefined;
  for (const send of senders) {
    try {
      send();
    } catch (error) {
      // The others still send; the first error surfaces as it did from its own setImmediate.
      failure ??= { error };
    }
  }
  if (failure) throw failure.error;
};
export const sendSoon = (send: () => void): void => {
  dueSenders.add(send);
  if (!sendScheduled) {
    sendScheduled = true;
    setImmediate(sendDue);
  }
};
