/**
 * A port that another program holds, as one line naming the port and the setting: a start that
 * fails on it says what to change, not "EADDRINUSE" or grpc-js's "No address added".
 */
export class PortTakenError extends Error {
  override readonly name = "PortTakenError";
  constructor(setting: string, host: string, port: number) {
    super(
      `${setting}=${port} is taken: another program listens on ${host}:${port}; set ${setting} to a free port (0: any free one)`,
    );
  }
}

/** Rethrows `err` as a PortTakenError when it says the address is in use. */
export function portTaken(setting: string, host: string, port: number) {
  return (err: unknown): never => {
    const text = err instanceof Error ? err.message : String(err);
    if (/EADDRINUSE|address already in use/i.test(text))
      throw new PortTakenError(setting, host, port);
    throw err;
  };
}
