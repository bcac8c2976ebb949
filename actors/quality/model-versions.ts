import type { StateMap } from "../../runtime/index.js";
import { servedModel, type AlsModel, type ServedModel } from "../sources/index.js";
import type { OfflineMetrics } from "../sources/index.js";

/**
 * Model versions (DESIGN §7): each ALS model the collaborative stage trains,
 * kept in that stage's state beside the model itself (so a restart keeps the history): its
 * version (1, 2, … per kind), the input point it was trained at (events fed: the data position),
 * the event time of that point, when its training started and how long it took (wall clock), its
 * size, and its offline metrics (HR@10, NDCG@10 on a held-out slice of its training data, computed
 * in the training worker: sources/als-eval.ts). The newest MAX_KEPT versions per kind are kept.
 */
export interface ModelVersion {
  kind: string;
  version: number;
  /** Input point: events fed to the stage when the training was due. */
  dataPosition: number;
  /** Event-time progress at that point (epoch ms). */
  eventTime: number;
  /** Wall clock: training submitted and model served (epoch ms). */
  submittedAt: number;
  trainedAt: number;
  users: number;
  items: number;
  rank: number;
  /** Offline metrics; absent when the training did not compute them (a version kept before). */
  offline?: OfflineMetrics;
}

const MAX_KEPT = 50;

export interface ModelVersions {
  /** A training of `kind` at input point `at` was submitted. */
  submitted(kind: string, at: number, eventTime: number): void;
  /** Its model arrived and is served. */
  trained(kind: string, at: number, model: AlsModel | ServedModel): void;
  /** Newest first. */
  list(): ModelVersion[];
}

export function createModelVersions(
  store: StateMap<ModelVersion>,
  clock: () => number = Date.now,
): ModelVersions {
  const pending = new Map<string, { eventTime: number; submittedAt: number }>();
  const key = (kind: string, version: number) => `${kind}:${String(version).padStart(8, "0")}`;
  const ofKind = (kind: string) =>
    [...store.entries()]
      .filter(([k]) => k.startsWith(`${kind}:`))
      .sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return {
    submitted(kind, at, eventTime) {
      pending.set(`${kind}@${at}`, { eventTime, submittedAt: clock() });
    },
    trained(kind, at, trained) {
      const model = servedModel(trained);
      const kept = ofKind(kind);
      const last = kept[kept.length - 1]?.[1];
      if (last && last.dataPosition >= at) return; // the same point's model again (a restart)
      const p = pending.get(`${kind}@${at}`);
      pending.delete(`${kind}@${at}`);
      const version = (last?.version ?? 0) + 1;
      store.set(key(kind, version), {
        kind,
        version,
        dataPosition: at,
        eventTime: p?.eventTime ?? -1,
        submittedAt: p?.submittedAt ?? -1,
        trainedAt: clock(),
        users: model.users,
        items: model.items.length,
        rank: model.settings.rank,
        ...(model.offline ? { offline: model.offline } : {}),
      });
      for (const [k] of kept.slice(0, Math.max(0, kept.length + 1 - MAX_KEPT))) store.delete(k);
    },
    list: () =>
      [...store.entries()]
        .map(([, v]) => v)
        .sort((a, b) => b.trainedAt - a.trainedAt || b.version - a.version),
  };
}
