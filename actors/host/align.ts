/**
 * Input alignment: the instances of one stage in a process that read the same stream take their
 * hops in the order of the hops' input positions (`upTo`), lowest first, as a Kafka Streams task
 * picks the partition with the lowest timestamp and Flink pauses a source split that runs ahead
 * of its group's watermark.
 *
 * Each partition's instance has its own consumer, and deliveries reach them at their own pace:
 * over a catch-up of 200,000 events the eight history instances of one process were 20,000 to
 * 56,000 EVENTS positions apart on average. What reads every partition's output in one order (a
 * covisit stage merges the pairs of all user partitions) must hold the records of the partitions
 * ahead until the one behind has reported that far: half of them waited over 2 s, long enough to
 * outlive two scavenges, go to the old generation and be written in two snapshots.
 *
 * A member's messages, as they arrive, are handed on (to its mailbox) while their `upTo` is at
 * most the group's floor + `ahead`; the others wait here, in order, until the floor rises. The
 * floor is the lowest `upTo` of a message any member holds (handed on and not yet taken, or
 * waiting): a member with nothing in hand holds nobody back, so a partition whose hops have not
 * come (idle, or a slow delivery) does not stop the others. The member with the floor always has
 * its first message handed on, so the group always moves. What waits here is what the consumer
 * delivered and the host has not acked: bounded by the input's max_ack_pending.
 *
 * Only while behind: a message that came with few more left at the server for its input (it
 * is live, not catching up) is handed on at once, after the member's earlier ones. Alignment
 * couples partitions (a partition's hops are read once for all its stages, so holding one
 * reader back holds them all), and under live traffic that put another partition's slowness on
 * a click's way to its answer; in a catch-up, where the spread comes from, every member is behind.
 *
 * Only the order in which instances take their own messages changes; each instance takes its own
 * in the order they came, so what any instance computes does not.
 */
export interface AlignedInput<T> {
  /**
   * A message of this input and its position: handed on now, or once the floor reaches it.
   * `behind`: the input is catching up (false: handed on after the member's earlier ones only).
   */
  receive(item: T, upTo: number, behind?: boolean): void;
  /** The instance took the oldest message handed on (it was handled, or dropped as covered). */
  taken(): void;
  /** The instance stops: it holds nobody back any more. */
  leave(): void;
  /** Messages received and not yet handed on. */
  waiting(): number;
}

export interface AlignGroups {
  /** Joins the group `key` (stage and stream); `send` hands a message on to the instance. */
  join<T>(key: string, send: (item: T) => void): AlignedInput<T>;
}

interface Member {
  /** Positions of the messages in hand, oldest first; the first `handed` are handed on. */
  ups: number[];
  items: unknown[];
  /** Index of the first message in hand (the arrays are consumed from the front). */
  head: number;
  handed: number;
  /** The last message came while the input was not behind: nothing of it waits for the floor. */
  live: boolean;
  send(item: unknown): void;
}

export function createAlignGroups(ahead: number): AlignGroups {
  const groups = new Map<string, Set<Member>>();

  const floorOf = (members: Set<Member>): number => {
    let floor = Infinity;
    for (const m of members)
      if (m.head < m.ups.length && m.ups[m.head]! < floor) floor = m.ups[m.head]!;
    return floor;
  };
  /** Hands on a member's waiting messages up to `floor` + `ahead` (all of them if live), in order. */
  const release = (m: Member, floor: number) => {
    const limit = m.live ? Infinity : floor + ahead;
    while (m.handed < m.ups.length && m.ups[m.handed]! <= limit) {
      const item = m.items[m.handed];
      m.items[m.handed] = undefined;
      m.handed++;
      m.send(item);
    }
  };
  const releaseAll = (members: Set<Member>) => {
    const floor = floorOf(members);
    for (const m of members) if (m.handed < m.ups.length) release(m, floor);
  };
  /** Drops what the member has taken from the front of its arrays once that is most of them. */
  const compact = (m: Member) => {
    if (m.head < 64 || m.head * 2 < m.ups.length) return;
    m.ups.splice(0, m.head);
    m.items.splice(0, m.head);
    m.handed -= m.head;
    m.head = 0;
  };

  return {
    join<T>(key: string, send: (item: T) => void): AlignedInput<T> {
      let members = groups.get(key);
      if (members === undefined) groups.set(key, (members = new Set()));
      const group = members;
      const m: Member = {
        ups: [],
        items: [],
        head: 0,
        handed: 0,
        live: false,
        send: send as (i: unknown) => void,
      };
      group.add(m);
      let left = false;
      return {
        receive(item, upTo, behind = true) {
          if (left) return;
          m.ups.push(upTo);
          m.items.push(item);
          m.live = !behind;
          // Messages in order: one behind a waiting one waits too (a live one goes with them).
          if (m.handed === m.ups.length - 1 || m.live) release(m, floorOf(group));
        },
        taken() {
          if (left || m.head >= m.handed) return;
          const was = m.ups[m.head]!;
          m.head++;
          compact(m);
          // The floor can only have risen if this member held it.
          const next = m.head < m.ups.length ? m.ups[m.head]! : Infinity;
          if (next > was && floorOf(group) >= was) releaseAll(group);
        },
        waiting: () => m.ups.length - m.handed,
        leave() {
          if (left) return;
          left = true;
          group.delete(m);
          if (group.size === 0) groups.delete(key);
          else releaseAll(group);
        },
      };
    },
  };
}
