import type { AlsModel } from "../../actors/sources/index.js";

/**
 * The stored forms of a trained ALS model before the served form ("ALS3", item factors only):
 * every user's factors U after the item ids, and the user ids either in the JSON header ("ALS1")
 * or packed after it ("ALS2": where each id starts as u32, then each id as a u16 length and its
 * UTF-8 bytes), each part 4-byte aligned. As an earlier als-model.ts wrote them; kept here
 * to prove that a state written then still restores.
 */
const pad4 = (n: number) => (4 - (n % 4)) % 4;

export function storedAls1(m: AlsModel, at: number): Uint8Array {
  const header = new TextEncoder().encode(
    JSON.stringify({ settings: m.settings, users: m.users, items: m.items, at }),
  );
  const start = 8 + header.length + pad4(8 + header.length);
  const out = new Uint8Array(start + m.U.byteLength + m.V.byteLength);
  new DataView(out.buffer).setUint32(0, 0x414c5331);
  new DataView(out.buffer).setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(m.U.buffer, m.U.byteOffset, m.U.byteLength), start);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start + m.U.byteLength);
  return out;
}

export function storedAls2(m: AlsModel, at: number): Uint8Array {
  const n = m.users.length;
  const starts = new Uint32Array(n);
  const parts: Buffer[] = [];
  let idBytes = 0;
  m.users.forEach((id, x) => {
    const utf8 = Buffer.from(id, "utf8");
    const rec = Buffer.alloc(2 + utf8.length);
    rec.writeUInt16LE(utf8.length, 0);
    utf8.copy(rec, 2);
    starts[x] = idBytes;
    idBytes += rec.length;
    parts.push(rec);
  });
  const ids = Buffer.concat(parts);
  const header = new TextEncoder().encode(
    JSON.stringify({ settings: m.settings, users: n, idBytes, items: m.items, at }),
  );
  const startsAt = 8 + header.length + pad4(8 + header.length);
  const idsAt = startsAt + 4 * n;
  const start = idsAt + idBytes + pad4(idBytes);
  const out = new Uint8Array(start + m.U.byteLength + m.V.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, 0x414c5332);
  dv.setUint32(4, header.length);
  out.set(header, 8);
  out.set(new Uint8Array(starts.buffer), startsAt);
  out.set(ids, idsAt);
  out.set(new Uint8Array(m.U.buffer, m.U.byteOffset, m.U.byteLength), start);
  out.set(new Uint8Array(m.V.buffer, m.V.byteOffset, m.V.byteLength), start + m.U.byteLength);
  return out;
}
