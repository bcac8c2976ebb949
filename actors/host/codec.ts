import {
  decodeEnvelope,
  encodeEnvelope,
  peekHead,
  readShared,
  recordsOfLastDecode,
  withHead,
} from "./envelope.js";

/**
 * The hop codec as the stage host uses it: where a hop's bytes are made and read (another format
 * plugs in here; the host only goes through this). The default is envelope.ts's.
 */
export interface HopCodec {
  /**
   * A hop of `recs` covering input up to `upTo`, progress `wm`, its subject's previous `prev`,
   * and the idle markers applied in its range (`ix`, envelope.ts).
   */
  encode(
    upTo: number,
    wm: number,
    recs: readonly unknown[],
    prev: number,
    ix?: readonly number[],
  ): Uint8Array;
  /** The same hop's records under another head (undefined: encode them again). */
  withHead(data: Uint8Array, upTo: number, wm: number, prev: number): Uint8Array | undefined;
  /** `upTo` and `prev` of a hop without decoding its records. */
  peekHead(data: Uint8Array): { upTo: number; prev: number };
  /** A hop's head and records. */
  decode<R>(data: Uint8Array): { upTo: number; wm: number; recs: R[]; ix?: readonly number[] };
  /**
   * Runs `fn` so that decodes of `data` inside it are shared with the other readers of the same
   * message in this process (`key` names the message; `readers` counts its readers, default 2).
   */
  shared<T>(key: string, data: Uint8Array, fn: () => T, readers?: number): T;
  /** Records of `data` if it was the last hop decoded, else 0 (for the input metrics). */
  recordsOfLastDecode(data: Uint8Array): number;
}

export function envelopeCodec(o: { rows?: boolean } = {}): HopCodec {
  const rows = o.rows ?? true;
  return {
    encode: (upTo, wm, recs, prev, ix) => encodeEnvelope(upTo, wm, recs, prev, rows, ix),
    withHead,
    peekHead,
    decode: decodeEnvelope,
    shared: readShared,
    recordsOfLastDecode,
  };
}
