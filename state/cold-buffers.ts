/**
 * The buffers one cold index's records are in (cold-index.ts): the buffers held, their live
 * records and bytes, and dropping a buffer once no live record is left in it.
 */

import { offOf, recordBytes, TWO32 } from "./cold-records.js";

export interface ColdBuffers {
  /** The buffers by index (a record's location says its buffer's index: cold-records.ts). */
  readonly bufs: (Buffer | undefined)[];
  /** Live records per buffer. */
  readonly live: number[];
  /** Bytes of the buffers held (their part this map owns). */
  readonly held: number;
  /** Bytes of the live records. */
  readonly liveTotal: number;
  /** adoptAll is placing records: a buffer left without live records is dropped after. */
  building: boolean;
  /**
   * The buffer adopt() is placing the records of (-1: none): not dropped by a dropEmpty() that
   * placing its first records brings about (they are not held yet); adopt drops it after if
   * none of them is live.
   */
  adopting: number;
  /** Holds `b`, of which `bytes` are this map's; returns its index. */
  add(b: Buffer, bytes: number): number;
  /** A record of `n` bytes in buffer `bi` is live. */
  hold(bi: number, n: number): void;
  /** The record at `loc` is no longer live. */
  release(loc: number): void;
  drop(i: number): void;
  /** Drops every buffer left without live records. */
  dropEmpty(): void;
  /** Replaces every buffer held with a compaction's (cold-compact.ts), in its order. */
  replace(out: readonly { buf: Buffer; count: number }[], headerBytes: number): void;
}

export function createColdBuffers(): ColdBuffers {
  const bufs: (Buffer | undefined)[] = [];
  /** Live records per buffer, and their bytes. */
  const live: number[] = [];
  const liveBytes: number[] = [];
  /** Bytes of the buffers held (their part this map owns) and of their live records. */
  const owned: number[] = [];
  let held = 0;
  let liveTotal = 0;
  const free: number[] = [];
  const dropBuf = (i: number) => {
    held -= owned[i]!;
    bufs[i] = undefined;
    free.push(i);
  };
  const buffers: ColdBuffers = {
    bufs,
    live,
    get held() {
      return held;
    },
    get liveTotal() {
      return liveTotal;
    },
    building: false,
    adopting: -1,
    add(b, bytes) {
      const i = free.length > 0 ? free.pop()! : bufs.length;
      bufs[i] = b;
      live[i] = 0;
      liveBytes[i] = 0;
      owned[i] = bytes;
      held += bytes;
      return i;
    },
    hold(bi, n) {
      live[bi]!++;
      liveBytes[bi]! += n;
      liveTotal += n;
    },
    release(loc) {
      const i = Math.floor(loc / TWO32);
      const n = recordBytes(bufs[i]!, offOf(loc));
      liveBytes[i]! -= n;
      liveTotal -= n;
      if (--live[i]! === 0 && !buffers.building) dropBuf(i);
    },
    drop: dropBuf,
    dropEmpty() {
      for (let i = 0; i < bufs.length; i++)
        if (bufs[i] && live[i] === 0 && i !== buffers.adopting) dropBuf(i);
    },
    replace(out, headerBytes) {
      bufs.length = 0;
      live.length = 0;
      liveBytes.length = 0;
      owned.length = 0;
      free.length = 0;
      held = 0;
      for (const c of out) {
        bufs.push(c.buf);
        live.push(c.count);
        liveBytes.push(c.buf.length - headerBytes);
        owned.push(c.buf.length);
        held += c.buf.length;
      }
    },
  };
  return buffers;
}
