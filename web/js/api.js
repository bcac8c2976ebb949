// The console talks to the JSON API only: what it shows is what any client gets.

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
  }
}

export async function api(path) {
  const res = await fetch(path, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => undefined);
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

/**
 * Follows /v1/trending/stream: calls `onUpdate` with each trending document. EventSource
 * reconnects by itself; `onState` hears "live" or "reconnecting".
 */
export function followTrending(window, k, onUpdate, onState = () => {}) {
  const es = new EventSource(`/v1/trending/stream?window=${window}&k=${k}`);
  es.addEventListener("trending", (e) => onUpdate(JSON.parse(e.data)));
  es.addEventListener("open", () => onState("live"));
  es.addEventListener("error", () => onState("reconnecting"));
  return () => es.close();
}
