/**
 * A bare HTTP/2 client for unary gRPC load (bench step 4's many-user generator): a TCP socket and
 * prebuilt frames, no node:http2. node:http2 costs the generator ~75-130 µs of CPU per call (a
 * stream object, its listeners, the header conversion, a promise) and a young-generation
 * collection every few thousand calls: on 2 cores that CPU is taken from the server under test,
 * and the generator's own stalls land in every latency it measures. Here a call is the copy of a
 * prebuilt HEADERS + DATA pair with its stream id patched in, all calls started in one tick go out
 * in one write, and an answer is read from the frame headers only.
 *
 * What it reads of an answer: a response HEADERS without END_STREAM, then DATA, then trailers
 * (HEADERS with END_STREAM) is an answered call; a first HEADERS that ends the stream is gRPC's
 * trailers-only form, which grpc-js uses for every error status (code -2 here, its status not
 * decoded: no HPACK decoder); RST_STREAM or a lost connection is -1. It does not decode
 * grpc-status, so the bench checks the statuses elsewhere: its warm-up asks every user once
 * through node:http2 (every grpc-status read) and the app's grpc_requests_total{code="OK"} must
 * count every call.
 */
import { connect as netConnect } from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
const DATA = 0;
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const PING = 6;
const GOAWAY = 7;
const WINDOW_UPDATE = 8;
const CONTINUATION = 9;
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const MAX_WINDOW = 2 ** 31 - 1;

/** Code of a call whose stream was reset or whose connection failed. */
export const TRANSPORT_ERROR = -1;
/** Code of a trailers-only answer: a gRPC error status (not decoded). */
export const TRAILERS_ONLY = -2;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const b = Buffer.alloc(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream, 5);
  payload.copy(b, 9);
  return b;
}

/** An HPACK integer with an `n`-bit prefix whose high bits are `first`. */
function hpackInt(value: number, n: number, first: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  for (value -= max; value >= 128; value >>= 7) out.push((value & 127) | 128);
  out.push(value);
  return out;
}
/** A raw (not Huffman) HPACK string. */
const hpackStr = (s: string) => [...hpackInt(Buffer.byteLength(s), 7, 0), ...Buffer.from(s)];

/**
 * The request's header block: static-table entries and literals without indexing only, so the
 * same bytes are valid for every call whatever the server's decoder table holds.
 */
export function requestHeaderBlock(authority: string, path: string): Buffer {
  return Buffer.from([
    0x83, // :method POST (static 3)
    0x86, // :scheme http (static 6)
    ...hpackInt(4, 4, 0), // :path, name static 4, literal without indexing
    ...hpackStr(path),
    ...hpackInt(1, 4, 0), // :authority (static 1)
    ...hpackStr(authority),
    ...hpackInt(31, 4, 0), // content-type (static 31)
    ...hpackStr("application/grpc"),
    0x00, // te: a new name, literal without indexing
    ...hpackStr("te"),
    ...hpackStr("trailers"),
  ]);
}

export interface RawH2Client {
  /**
   * Starts one call posting `body` (a length-prefixed gRPC frame); `done(code, ms)` runs when it
   * ends (0: answered, TRAILERS_ONLY, TRANSPORT_ERROR), with its latency.
   */
  call(body: number, done: (code: number, ms: number) => void): void;
  close(): void;
}

/**
 * Opens one connection to `url` (http://host:port/path) for calls posting the prebuilt `bodies`
 * (by index). Resolves once the server's SETTINGS came.
 */
export async function connectRawH2(url: string, bodies: Buffer[]): Promise<RawH2Client> {
  const u = new URL(url);
  const block = requestHeaderBlock(u.host, u.pathname);
  // One template per body: HEADERS (END_HEADERS) + DATA (END_STREAM), stream id patched per call.
  const dataAt = 9 + block.length;
  const templates = bodies.map((b) =>
    Buffer.concat([frame(HEADERS, END_HEADERS, 0, block), frame(DATA, END_STREAM, 0, b)]),
  );
  const socket = netConnect({ host: u.hostname, port: Number(u.port), noDelay: true });
  /** Calls in flight: stream id → [start time, done, phase (0 headers, 1 answer, 2 data)]. */
  const open = new Map<
    number,
    { t0: number; done: (c: number, ms: number) => void; phase: number }
  >();
  let nextStream = 1;
  /** Calls started in this tick, written together. */
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let flushQueued = false;
  /** The server's connection window for our DATA, and calls waiting for it. */
  let sendWindow = 65_535;
  const waiting: [number, (c: number, ms: number) => void][] = [];
  /** DATA bytes received since our last WINDOW_UPDATE. */
  let received = 0;
  let failed: Error | undefined;
  /** Stream whose trailers continue in CONTINUATION frames (END_STREAM came before END_HEADERS). */
  let closingOnHeaders = 0;

  const flush = () => {
    flushQueued = false;
    if (pending.length === 0) return;
    socket.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  const send = (b: Buffer) => {
    pending.push(b);
    pendingBytes += b.length;
    if (!flushQueued) {
      flushQueued = true;
      process.nextTick(flush);
    }
  };
  const finish = (id: number, code: number) => {
    const c = open.get(id);
    if (!c) return;
    open.delete(id);
    c.done(code, performance.now() - c.t0);
  };
  const fail = (err: Error) => {
    if (failed) return;
    failed = err;
    for (const id of [...open.keys()]) finish(id, TRANSPORT_ERROR);
    for (const [, done] of waiting.splice(0)) done(TRANSPORT_ERROR, 0);
    socket.destroy();
  };
  const start = (body: number, done: (c: number, ms: number) => void) => {
    const t = templates[body]!;
    const size = t.length - dataAt - 9;
    if (sendWindow < size) {
      waiting.push([body, done]);
      return;
    }
    sendWindow -= size;
    const id = nextStream;
    nextStream += 2;
    const b = Buffer.allocUnsafe(t.length);
    t.copy(b);
    b.writeUInt32BE(id, 5);
    b.writeUInt32BE(id, dataAt + 5);
    open.set(id, { t0: performance.now(), done, phase: 0 });
    send(b);
  };

  let buf: Buffer = Buffer.alloc(0);
  const onFrame = (type: number, flags: number, id: number, at: number, len: number) => {
    switch (type) {
      case DATA: {
        received += len;
        if (received >= 1 << 30) {
          const p = Buffer.alloc(4);
          p.writeUInt32BE(received);
          send(frame(WINDOW_UPDATE, 0, 0, p));
          received = 0;
        }
        const c = open.get(id);
        if (c && len > 0) c.phase = 2;
        // A gRPC answer ends with trailers, never with DATA.
        if (flags & END_STREAM) finish(id, TRANSPORT_ERROR);
        return;
      }
      case HEADERS: {
        const c = open.get(id);
        if (!c) return;
        if (!(flags & END_STREAM)) {
          c.phase = Math.max(c.phase, 1);
          return;
        }
        // Trailers after a message: answered; a first HEADERS ending the stream: trailers-only.
        const code = c.phase === 2 ? 0 : TRAILERS_ONLY;
        if (flags & END_HEADERS) finish(id, code);
        else {
          closingOnHeaders = id;
          c.phase = code === 0 ? 3 : 4;
        }
        return;
      }
      case CONTINUATION:
        if (flags & END_HEADERS && closingOnHeaders === id) {
          closingOnHeaders = 0;
          finish(id, open.get(id)?.phase === 3 ? 0 : TRAILERS_ONLY);
        }
        return;
      case RST_STREAM:
        finish(id, TRANSPORT_ERROR);
        return;
      case SETTINGS:
        if (!(flags & ACK)) send(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        return;
      case PING:
        if (!(flags & ACK)) send(frame(PING, ACK, 0, buf.subarray(at, at + len)));
        return;
      case GOAWAY:
        fail(new Error(`GOAWAY from the server (error code ${buf.readUInt32BE(at + 4)})`));
        return;
      case WINDOW_UPDATE:
        if (id === 0) {
          sendWindow += buf.readUInt32BE(at) & MAX_WINDOW;
          while (waiting.length > 0 && !failed) {
            const [body, done] = waiting[0]!;
            if (sendWindow < templates[body]!.length - dataAt - 9) break;
            waiting.shift();
            start(body, done);
          }
        }
        return;
    }
  };

  const ready = new Promise<void>((resolve, reject) => {
    let settled = false;
    socket.once("error", (err) => {
      if (!settled) reject(err);
      fail(err);
    });
    socket.on("close", () => fail(new Error("connection closed")));
    socket.on("data", (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      let at = 0;
      while (buf.length - at >= 9) {
        const len = buf.readUIntBE(at, 3);
        if (buf.length - at < 9 + len) break;
        const type = buf[at + 3]!;
        if (type === SETTINGS && !settled) {
          settled = true;
          resolve();
        }
        onFrame(type, buf[at + 4]!, buf.readUInt32BE(at + 5) & MAX_WINDOW, at + 9, len);
        at += 9 + len;
      }
      buf = at === buf.length ? Buffer.alloc(0) : buf.subarray(at);
    });
    // Preface; SETTINGS: no push, the largest stream window (so the server never waits for us);
    // then the largest connection window.
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(MAX_WINDOW, 8);
    const inc = Buffer.alloc(4);
    inc.writeUInt32BE(MAX_WINDOW - 65_535);
    socket.write(
      Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(WINDOW_UPDATE, 0, 0, inc)]),
    );
  });
  await ready;
  return {
    call(body, done) {
      if (failed) done(TRANSPORT_ERROR, 0);
      else start(body, done);
    },
    close() {
      flush();
      socket.end();
    },
  };
}
