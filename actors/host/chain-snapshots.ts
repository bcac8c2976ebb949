import { chainStageName, COUNT_SEP, membersOfStage } from "./host-chain.js";

/*
 * A chain's snapshot cut into its members' snapshots and joined back: what lets CHAINING change
 * between runs (a chain restored from its members' snapshots, and members from a chain's), and
 * what the plan's snapshot moves (bin/pipeline/plan-snapshots.ts) are made of.
 */

/**
 * A snapshot as its instance stores it (state/store.ts exportRaw): the metadata and every map's
 * entries, keyed "<map>\0<key>".
 */
export interface PlainSnapshot {
  meta: Record<string, unknown>;
  entries: [string, unknown][];
}

/** The host's own metadata (host.ts capture); the rest of `meta` is the stages'. */
const HOST_META = new Set(["seq", "upTo", "wm", "stats", "sent"]);

/** One member's part of a snapshot: its maps, metadata and counts, without the member prefix. */
interface MemberPart {
  meta: Record<string, unknown>;
  entries: [string, unknown][];
  stats: Record<string, number>;
}

/** A snapshot of `stage` (a chain's or one stage's) cut into its members' parts. */
function memberParts(stage: string, snap: PlainSnapshot): Map<string, MemberPart> {
  const members = membersOfStage(stage);
  const parts = new Map<string, MemberPart>(
    members.map((m) => [m, { meta: {}, entries: [], stats: {} }]),
  );
  const chained = members.length > 1;
  const split = (key: string): [MemberPart, string] => {
    const at = key.indexOf(COUNT_SEP);
    const part = chained && at > 0 ? parts.get(key.slice(0, at)) : undefined;
    // Without a member's prefix: one stage's own, or the chain's (its first member takes it).
    return part ? [part, key.slice(at + 1)] : [parts.get(members[0]!)!, key];
  };
  for (const [key, value] of snap.entries) {
    const [part, rest] = split(key);
    part.entries.push([rest, value]);
  }
  for (const [key, value] of Object.entries(snap.meta)) {
    if (HOST_META.has(key)) continue;
    const [part, rest] = split(key);
    part.meta[rest] = value;
  }
  const stats = (snap.meta.stats as Record<string, number> | undefined) ?? {};
  for (const [key, value] of Object.entries(stats)) {
    const [part, rest] = split(key);
    part.stats[rest] = value;
  }
  return parts;
}

/** The snapshot of the instance made of `parts` (in member order), with the host's `host` meta. */
function joinParts(
  parts: readonly [string, MemberPart][],
  host: { seq: number; upTo: number; wm: unknown; sent: Record<string, number> },
): PlainSnapshot {
  const chained = parts.length > 1;
  const name = (member: string, key: string) => (chained ? `${member}${COUNT_SEP}${key}` : key);
  const meta: Record<string, unknown> = {};
  const stats: Record<string, number> = {};
  const entries: [string, unknown][] = [];
  for (const [member, part] of parts) {
    for (const [k, v] of part.entries) entries.push([name(member, k), v]);
    for (const [k, v] of Object.entries(part.meta)) meta[name(member, k)] = v;
    for (const [k, v] of Object.entries(part.stats)) stats[name(member, k)] = v;
  }
  return { meta: { ...meta, ...host, stats }, entries };
}

const sentOf = (snap: PlainSnapshot) =>
  (snap.meta.sent as Record<string, number> | undefined) ?? {};

/** Whether an instance's snapshot holds anything (a fresh instance's holds nothing). */
export function isEmptySnapshot(snap: PlainSnapshot): boolean {
  return snap.entries.length === 0 && !snap.meta.seq && !snap.meta.upTo;
}

/**
 * Cuts the snapshot of the chain `stage` in two before member `at` (its index), for a plan that
 * runs the two sides as separate instances. The head keeps the chain's input position. The tail
 * reads the subject between them from its start: every hop on it up to the chain's position is
 * dropped as processed, because a hop a chain publishes carries the chain's input position as
 * `upTo`, the numbering its members were handed; hops the chain did not publish do not exist,
 * and the head publishes from its position on.
 */
export function cutSnapshot(
  stage: string,
  snap: PlainSnapshot,
  at: number,
): { head: [string, PlainSnapshot]; tail: [string, PlainSnapshot] } {
  const members = membersOfStage(stage);
  if (at <= 0 || at >= members.length) throw new Error(`cannot cut ${stage} before member ${at}`);
  const parts = memberParts(stage, snap);
  const pick = (ms: string[]) => ms.map((m) => [m, parts.get(m)!] as [string, MemberPart]);
  const seq = Number(snap.meta.seq ?? 0);
  // Each output subject is one member's: the other side never writes it.
  const sent = sentOf(snap);
  const [head, tail] = [members.slice(0, at), members.slice(at)];
  const upTo = Number(snap.meta.upTo ?? 0);
  return {
    head: [
      chainStageName(head.map((stage) => ({ stage }))),
      joinParts(pick(head), { seq, upTo, wm: snap.meta.wm, sent }),
    ],
    tail: [
      chainStageName(tail.map((stage) => ({ stage }))),
      joinParts(pick(tail), { seq: 0, upTo: seq, wm: snap.meta.wm, sent }),
    ],
  };
}

/**
 * Whether `tail`, the instance that reads what `head` writes on `boundary`, has processed exactly
 * the hops the head sent up to the head's snapshot: its `upTo` at least the head's last hop on
 * `boundary`, and not beyond the head's position (a head restored from a snapshot older than the
 * hops the tail read would hand them to it again). Then the two are one state at the head's
 * position, and can run on as one chain.
 */
export function joinable(head: PlainSnapshot, tail: PlainSnapshot, boundary: string): boolean {
  const lastHop = sentOf(head)[boundary] ?? 0;
  if (isEmptySnapshot(tail)) return lastHop === 0;
  const upTo = Number(tail.meta.upTo ?? 0);
  return upTo >= lastHop && upTo <= Number(head.meta.seq ?? 0);
}

/**
 * The snapshot of the chain made of consecutive instances (`segments`, in path order, each
 * joinable with the next): their members' parts side by side, at the first one's input position.
 */
export function joinSnapshots(
  segments: readonly [string, PlainSnapshot][],
): [string, PlainSnapshot] {
  const [first] = segments;
  if (first === undefined) throw new Error("nothing to join");
  const parts: [string, MemberPart][] = [];
  let sent: Record<string, number> = {};
  for (const [stage, snap] of segments) {
    for (const [m, part] of memberParts(stage, snap)) parts.push([m, part]);
    sent = { ...sent, ...sentOf(snap) };
  }
  const [, head] = first;
  return [
    chainStageName(parts.map(([stage]) => ({ stage }))),
    joinParts(parts, {
      seq: Number(head.meta.seq ?? 0),
      upTo: Number(head.meta.upTo ?? 0),
      wm: head.meta.wm,
      sent,
    }),
  ];
}
