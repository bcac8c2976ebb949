import type { CovisitStores } from "./covisit.js";
import { RecentItems } from "./recent-items.js";
import type { UserHistory } from "./history.js";
import type { KeyStore } from "./store.js";

/**
 * One value per user for two sources' per-user data: co-visitation's recent items and a history
 * (the prequential scorer's copy, from when it ran inside the covisit stage; the covisit stage
 * reads such values with `recentStore`, and `userStores` reads both parts). One key per user
 * instead of one per user and source.
 *
 * A value as stored: `{ r, h }` (JSON; either may be absent), or a bare recent list (what the
 * covisit stage stores now, and stored before the scorer ran in it, read as `{ r }`).
 */
type Recent = NonNullable<ReturnType<CovisitStores["recent"]["get"]>>;

export interface UserValue {
  r?: Recent;
  h?: UserHistory;
}

export interface UserStores {
  recent: CovisitStores["recent"];
  history: KeyStore<UserHistory>;
}

/**
 * Views of `users` as co-visitation's recent lists and as histories. Each source changes its part
 * in place and sets it; the view sets the user's whole value (which marks the key changed).
 */
export function userStores(users: KeyStore<UserValue | Recent>): UserStores {
  const valueOf = (k: string): UserValue | undefined => {
    const v = users.get(k);
    return v === undefined ? v : asValue(v);
  };
  const part = <P extends keyof UserValue>(p: P): KeyStore<NonNullable<UserValue[P]>> => ({
    get: (k) => valueOf(k)?.[p] as NonNullable<UserValue[P]> | undefined,
    set(k, x) {
      const v = valueOf(k) ?? {};
      v[p] = x;
      users.set(k, v);
    },
    delete(k) {
      const v = valueOf(k);
      if (v === undefined) return;
      delete v[p];
      if (v.r === undefined && v.h === undefined) users.delete(k);
      else users.set(k, v);
    },
    get size() {
      return users.size;
    },
    *keys() {
      for (const [k, v] of users.entries()) if (asValue(v)[p] !== undefined) yield k;
    },
    *entries() {
      for (const [k, v] of users.entries()) {
        const x = asValue(v)[p];
        if (x !== undefined) yield [k, x as NonNullable<UserValue[P]>];
      }
    },
  });
  return { recent: part("r"), history: part("h") };
}

/**
 * Co-visitation's recent lists over `users` as stored by any version: a value `{ r, h }` (the
 * scorer's history beside them, when the scorer ran in the covisit stage) reads as its `r`, and
 * a user's next write stores the bare list (the history part is dropped: nothing reads it now).
 */
export function recentStore(users: KeyStore<UserValue | Recent>): CovisitStores["recent"] {
  return {
    get: (k) => {
      const v = users.get(k);
      return v === undefined ? v : asValue(v).r;
    },
    set: (k, x) => users.set(k, x),
    delete: (k) => users.delete(k),
    get size() {
      return users.size;
    },
    *keys() {
      for (const [k, v] of users.entries()) if (asValue(v).r !== undefined) yield k;
    },
    *entries() {
      for (const [k, v] of users.entries()) {
        const x = asValue(v).r;
        if (x !== undefined) yield [k, x];
      }
    },
  };
}

/** A stored value as `{ r, h }`: a bare recent list (stored before the scorer ran here) is `{ r }`. */
function asValue(v: UserValue | Recent): UserValue {
  return Array.isArray(v) || v instanceof RecentItems ? { r: v } : v;
}
