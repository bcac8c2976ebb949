import type { Server } from "node:http";

/** How long an idle keep-alive connection stays open (ms). */
export const KEEP_ALIVE_MS = 65_000;

/**
 * Keeps idle client connections open for a minute instead of node's 5 s. With 5 s, a client that
 * reuses its connection (Prometheus between scrapes, a dashboard polling every few seconds, fetch's
 * pool) races the server closing it and gets ECONNRESET on a request it already sent; a busy event
 * loop that fires the close timer late makes that race likely. Headers must still arrive in time.
 */
export function keepIdleConnections(server: Server): void {
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 1_000;
}
