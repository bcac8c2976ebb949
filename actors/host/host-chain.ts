import type { StageState } from "../../state/index.js";
import { carryEnvelope, isCarried } from "./envelope.js";
import type { InputMessage, StageHandler, StageOutput, StageSpec } from "./types.js";

/**
 * A chain (DESIGN §3 "Logical graph, physical plan"; Flink's OperatorChain): stages that follow
 * each other on the same partitioning, run by the host as ONE stage instance. The chain reads
 * its first member's input with one durable consumer and one mailbox, and snapshots every
 * member's state with the one input position they all reflect, in one atomic batch. A member
 * that throws fails the chain: its supervisor restarts the whole chain from that snapshot.
 *
 * Each member keeps its handler, its named maps (namespaced by its stage name, so two members'
 * maps never collide) and its counts (`<stage>/<name>`: memberCounts splits them again). What a
 * member emits to the next member's input subject is handed to the next handler within the
 * same input message's handling, as a carried hop (envelope.ts carryEnvelope: no encoding,
 * no publish, no consumer). Everything else a member writes goes out through the host as before
 * (late events, dead letters, KV upserts), and so does a hop between members that readers
 * outside the chain also read (`published`).
 */

export interface ChainHandler extends StageHandler {
  /** A member's live handler, by its stage name (serving reads popularity-join's). */
  member(stage: string): StageHandler | undefined;
  /** What each member did since the last call, and resets it (the host's per-stage metrics). */
  takeMemberLoad(): MemberLoad[];
  /** Keys each member's maps hold, by member (the chain's state is theirs together). */
  memberKeys(): Map<string, number>;
}

/**
 * A member's share of the chain's work: the time its handler held the event loop, and the input
 * messages (hops handed on in memory, for every member but the first) and records it was given.
 * Prometheus shows each member under its own stage name, as Flink reports chained operators.
 */
export interface MemberLoad {
  stage: string;
  busyMs: number;
  /** The longest single handling so far (not reset). */
  longestMs: number;
  inputs: number;
  records: number;
}

/** Whether a handler is a chain's (the host reports its members' load apart). */
export function isChainHandler(h: StageHandler | undefined): h is ChainHandler {
  return h !== undefined && "takeMemberLoad" in h;
}

export interface ChainOptions {
  /**
   * Whether a subject between two members is also read outside the chain (other processes,
   * serving replicas): then its hops are published too, as without the chain.
   */
  published(subject: string): boolean;
}

/** The chain's stage name: its members' names in order, joined by "+". */
export function chainStageName(members: readonly { stage: string }[]): string {
  return members.map((m) => m.stage).join("+");
}

/** The member stages of a stage name (a chain's, or one stage's own). */
export function membersOfStage(stage: string): string[] {
  return stage.split("+");
}

/** Separates a member's stage name from the count name in the chain's counts. */
export const COUNT_SEP = "/";

/** The chain's counts per member stage (a count without a member prefix stays under `stage`). */
export function memberCounts(
  stage: string,
  stats: Readonly<Record<string, number>>,
): Map<string, Record<string, number>> {
  const byStage = new Map<string, Record<string, number>>();
  for (const [name, v] of Object.entries(stats)) {
    const at = name.indexOf(COUNT_SEP);
    const member = at > 0 ? name.slice(0, at) : stage;
    let counts = byStage.get(member);
    if (!counts) byStage.set(member, (counts = {}));
    counts[at > 0 ? name.slice(at + 1) : name] = v;
  }
  return byStage;
}

/**
 * A member's view of the chain's state: its maps and metadata under `<stage>/`. The host replaces
 * the chain's `meta` object at each load and snapshot, so the view reads it at every access.
 */
function memberState(
  parent: StageState,
  stage: string,
  maps: { readonly size: number }[] = [],
): StageState {
  const key = (name: string) => `${stage}/${name}`;
  const meta = new Proxy({} as Record<string, unknown>, {
    get: (_t, k) => (typeof k === "string" ? parent.meta[key(k)] : undefined),
    set: (_t, k, v) => {
      if (typeof k !== "string") return false;
      parent.meta[key(k)] = v;
      return true;
    },
    has: (_t, k) => typeof k === "string" && key(k) in parent.meta,
    deleteProperty: (_t, k) => {
      if (typeof k === "string") delete parent.meta[key(k)];
      return true;
    },
  });
  return {
    map: (name, options) => {
      const m = parent.map(key(name), options);
      maps.push(m);
      return m;
    },
    meta,
    value: (name) => parent.value(key(name)),
    dirtyCount: () => parent.dirtyCount(),
    keyCount: () => parent.keyCount(),
  };
}

/** What a member handed on to the next one while handling the current input. */
interface Handoff {
  recs: unknown[];
  /** Records were passed as the member's own array (forwarded unchanged): copy before adding. */
  borrowed: boolean;
  touched: boolean;
  progress: number;
}

/**
 * A member's output: hops to the next member's subject are kept for it (and published too when
 * read outside the chain), the rest goes to the host's output. Progress goes to the host too:
 * each member passes its input's progress on, so after an input every member holds the same.
 */
function memberOutput(
  out: StageOutput,
  stage: string,
  next: string | undefined,
  published: boolean,
  handoff: Handoff,
): StageOutput {
  const keep = (recs: readonly unknown[]) => {
    if (recs.length === 0) return;
    if (handoff.recs.length === 0) {
      handoff.recs = recs as unknown[];
      handoff.borrowed = true;
      return;
    }
    if (handoff.borrowed) {
      handoff.recs = [...handoff.recs];
      handoff.borrowed = false;
    }
    for (const r of recs) handoff.recs.push(r);
  };
  return {
    emit(subject, record, bytes) {
      if (subject !== next) return out.emit(subject, record, bytes);
      keep([record]);
      if (published) out.emit(subject, record, bytes);
    },
    forward(subject, data, recs) {
      if (subject !== next) {
        if (out.forward && !isCarried(data)) out.forward(subject, data, recs);
        else for (const r of recs) out.emit(subject, r);
        return;
      }
      keep(recs);
      if (!published) return;
      // A carried hop has no bytes to forward.
      if (out.forward && !isCarried(data)) out.forward(subject, data, recs);
      else for (const r of recs) out.emit(subject, r);
    },
    touch(subject) {
      if (subject !== next) return out.touch(subject);
      handoff.touched = true;
      if (published) out.touch(subject);
    },
    setProgress(wm) {
      handoff.progress = wm;
      out.setProgress(wm);
    },
    raw: (subject, data, headers, msgId) => out.raw(subject, data, headers, msgId),
    kvPut: (bucket, key, value) => out.kvPut(bucket, key, value),
    count: (name, n) => out.count(`${stage}${COUNT_SEP}${name}`, n),
  };
}

const NO_HEADERS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/**
 * A member's failure, named after the member: the chain fails as a whole, and its error (in the
 * log, in a poison message's Reco-Error) says which of its stages threw.
 */
export class MemberError extends Error {
  constructor(
    readonly stage: string,
    cause: unknown,
  ) {
    super(
      `${stage}: ${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)}`,
      {
        cause,
      },
    );
    this.name = "MemberError";
  }
}

function memberHandle(stage: string, h: StageHandler, msg: InputMessage, lastUpTo: number) {
  try {
    h.handle(msg, lastUpTo);
  } catch (err) {
    throw new MemberError(stage, err);
  }
}

/**
 * The chain of `members` (in order, each reading the subject the one before it writes) as one
 * stage spec for the host: the first member's input, consumer, batching and in-flight bound.
 */
export function chainSpec(
  members: readonly StageSpec<StageHandler>[],
  opts: ChainOptions,
): StageSpec<ChainHandler> {
  const [first] = members;
  if (first === undefined || members.length < 2) throw new Error("a chain has two stages or more");
  for (const m of members) {
    if (m.partition !== first.partition || m.stream !== first.stream)
      throw new Error(`stage ${m.stage} cannot chain: another partition or stream`);
    if (m.tickMs !== undefined) throw new Error(`stage ${m.stage} cannot chain: it has ticks`);
  }
  for (const m of members.slice(1))
    if (m.input !== "envelope") throw new Error(`stage ${m.stage} cannot chain: raw input`);
  const stage = chainStageName(members);
  return {
    stage,
    partition: first.partition,
    stream: first.stream,
    subject: first.subject,
    input: first.input,
    ...(first.inFlight !== undefined ? { inFlight: first.inFlight } : {}),
    batching: first.batching,
    async create(state, out) {
      const handoffs: Handoff[] = members.map(() => ({
        recs: [],
        borrowed: false,
        touched: false,
        // The progress the chain's snapshot holds: every member passed it on before it.
        progress: Number(state.meta.wm ?? -1),
      }));
      // The position of the chain's input last handed to each member: its next `lastUpTo`.
      const handed = members.map(() => Number(state.meta.seq ?? 0));
      const handlers: StageHandler[] = [];
      const mapsOf = new Map<string, { readonly size: number }[]>();
      for (let k = 0; k < members.length; k++) {
        const m = members[k]!;
        const next = members[k + 1]?.subject;
        const o = memberOutput(
          out,
          m.stage,
          next,
          next !== undefined && opts.published(next),
          handoffs[k]!,
        );
        const maps: { readonly size: number }[] = [];
        mapsOf.set(m.stage, maps);
        handlers.push(await m.create(memberState(state, m.stage, maps), o));
      }
      const byStage = new Map(members.map((m, k) => [m.stage, handlers[k]!]));
      const load: MemberLoad[] = members.map((m) => ({
        stage: m.stage,
        busyMs: 0,
        longestMs: 0,
        inputs: 0,
        records: 0,
      }));

      const handle = (msg: InputMessage, lastUpTo: number) => {
        let t0 = performance.now();
        memberHandle(members[0]!.stage, handlers[0]!, msg, lastUpTo);
        let t1 = performance.now();
        load[0]!.busyMs += t1 - t0;
        if (t1 - t0 > load[0]!.longestMs) load[0]!.longestMs = t1 - t0;
        load[0]!.inputs++; // its records: the host counts them as it decodes
        for (let k = 1; k < members.length; k++) {
          const h = handoffs[k - 1]!;
          // As without the chain: no hop when the member before sent nothing and touched nothing.
          if (!h.touched && h.recs.length === 0) break;
          const hop: InputMessage = {
            seq: msg.seq,
            subject: members[k]!.subject,
            data: carryEnvelope({ upTo: msg.seq, wm: h.progress, recs: h.recs }),
            headers: NO_HEADERS,
          };
          const l = load[k]!;
          l.inputs++;
          l.records += h.recs.length;
          h.recs = [];
          h.borrowed = false;
          h.touched = false;
          const before = handed[k]!;
          handed[k] = msg.seq;
          t0 = t1;
          memberHandle(members[k]!.stage, handlers[k]!, hop, before);
          t1 = performance.now();
          l.busyMs += t1 - t0;
          if (t1 - t0 > l.longestMs) l.longestMs = t1 - t0;
        }
      };
      const takeMemberLoad = () => {
        const taken = load.map((l) => ({ ...l }));
        for (const l of load) l.busyMs = l.inputs = l.records = 0;
        return taken;
      };
      const memberKeys = () => {
        const keys = new Map<string, number>();
        for (const [stage, maps] of mapsOf) {
          // A map asked for twice is one map: counted once.
          let n = 0;
          for (const m of new Set(maps)) n += m.size;
          keys.set(stage, n);
        }
        return keys;
      };
      return { handle, member: (s: string) => byStage.get(s), takeMemberLoad, memberKeys };
    },
  };
}
