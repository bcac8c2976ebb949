import type { HostFaults } from "../actors/host/index.js";
import { setDefaultHopForm } from "../actors/host/index.js";

/**
 * The faults a test asks a spawned process for, read from its environment here, at the process
 * edge, and handed to the modules that take them as dependencies (actors/host/host.ts, state/store.ts):
 * no production module reads them. Unset in production: every hook is then absent.
 *
 * - RECO_TEST_DROP_DELIVERY="<stage>/<partition>:<n>": that instance ignores the n-th message its
 *   consumer delivers, once per process (the delivery-gap test);
 * - RECO_TEST_SLOW_START="<stage>/<partition>:<ms>": that instance's start waits ms before its
 *   snapshot loads, like a large snapshot would (the serve-first test);
 * - RECO_TEST_KILL_IN_SNAPSHOT_WRITE=N: a process SIGKILLs the app while its own N-th snapshot batch
 *   is being written (the chaos test): the app is the process `reco start` started as
 *   (RECO_TEST_APP_PID, which it sets for its children: see appPidForFaults), then itself, as a
 *   kill -9 of the app does; its other children die with it (PR_SET_PDEATHSIG). With
 *   SERVE_PROCESS=1 the snapshots are the ingest child's: killing only itself, it was restarted by
 *   the serving process and killed itself again at the same write, and the app never got ready;
 * - RECO_HOP_ROWS=0: hops in the JSON objects form only (a bench comparison knob, not a fault);
 * - RECO_HOP_FORMAT=json: hops in the JSON rows form instead of binary (the same kind of knob).
 */
export interface ProcessFaults {
  host: HostFaults;
  hopRows: boolean;
  onSnapshotWrite?: () => void;
}

export function faultsFromEnv(env: NodeJS.ProcessEnv): ProcessFaults {
  const host: HostFaults = {};
  const drop = env.RECO_TEST_DROP_DELIVERY;
  if (drop) {
    let dropped = false;
    host.dropDelivery = (id, delivery) => {
      if (dropped || drop !== `${id}:${delivery}`) return false;
      dropped = true;
      return true;
    };
  }
  const slow = env.RECO_TEST_SLOW_START;
  if (slow) {
    const [who, ms] = slow.split(":");
    host.beforeLoad = async (id) => {
      if (id === who) await new Promise((resolve) => setTimeout(resolve, Number(ms)));
    };
  }
  const faults: ProcessFaults = { host, hopRows: env.RECO_HOP_ROWS !== "0" };
  if (env.RECO_HOP_FORMAT === "json") setDefaultHopForm("rows");
  const killAt = Number(env.RECO_TEST_KILL_IN_SNAPSHOT_WRITE ?? 0);
  if (killAt > 0) {
    let writes = 0;
    const app = Number(env.RECO_TEST_APP_PID) || process.pid;
    faults.onSnapshotWrite = () => {
      if (++writes !== killAt) return;
      if (app !== process.pid) process.kill(app, "SIGKILL");
      process.kill(process.pid, "SIGKILL");
    };
  }
  return faults;
}

/**
 * Called by the process `reco start` runs as, before it starts children: with a kill fault set,
 * they learn its pid (RECO_TEST_APP_PID, inherited), so that a child's fault kills the app.
 */
export function appPidForFaults(env: NodeJS.ProcessEnv): void {
  if (env.RECO_TEST_KILL_IN_SNAPSHOT_WRITE && !env.RECO_TEST_APP_PID)
    env.RECO_TEST_APP_PID = String(process.pid);
}
