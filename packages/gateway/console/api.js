// The console's only way to the gateway: its public HTTP API, same origin, with the bearer token
// kept in sessionStorage (gone when the tab closes; never in the URL, never in localStorage).

const TOKEN_KEY = "station-coding.token";
const ORG_KEY = "station-coding.org";

/** The stored token, or null when signed out. */
export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/** The org an admin looks at ("" or null: the only one). */
export function storedOrg() {
  return sessionStorage.getItem(ORG_KEY) ?? "";
}

export function setOrg(org) {
  sessionStorage.setItem(ORG_KEY, org);
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ORG_KEY);
}

/** An HTTP error from the gateway, with its RFC 9457 problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail ?? problem?.title ?? `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

function headers(token, extra = {}, everyOrg = false) {
  const h = { Authorization: `Bearer ${token}`, ...extra };
  const org = storedOrg();
  if (org !== "" && !everyOrg) h["Station-Org"] = org;
  return h;
}

async function failure(response) {
  let problem;
  try {
    problem = await response.json();
  } catch {
    problem = undefined;
  }
  return new ApiError(response.status, problem);
}

/**
 * Checks a token with GET /v1/me and keeps it when the gateway knows it.
 * @returns the principal `{name, role, org?, orgs}`
 */
export async function signIn(token) {
  const response = await fetch("/v1/me", { headers: { Authorization: `Bearer ${token}` } });
  if (!response.ok) throw await failure(response);
  const me = await response.json();
  sessionStorage.setItem(TOKEN_KEY, token);
  if (me.orgs.length > 0 && !me.orgs.includes(storedOrg())) setOrg(me.orgs[0]);
  return me;
}

/**
 * A JSON request to the gateway as the signed-in token. `everyOrg`: without the admin's chosen org,
 * so that an aggregate (stats, costs) covers every org the token may see.
 */
export async function api(path, { method = "GET", json, signal, everyOrg = false } = {}) {
  const token = storedToken();
  if (token === null) throw new ApiError(401, { detail: "not signed in" });
  const response = await fetch(path, {
    method,
    signal,
    headers: headers(token, json !== undefined ? { "Content-Type": "application/json" } : {}, everyOrg),
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("content-type") ?? "";
  return type.includes("json") ? response.json() : response.text();
}

/**
 * Reads one Server-Sent Events response from the gateway (EventSource cannot send a bearer token,
 * so this is fetch and a small parser). Calls `onOpen()` once the headers arrived and
 * `onEvent(type, data, id)` per event, in order; resolves when the response ends.
 */
async function readSse(path, { signal, onOpen, onEvent }) {
  const response = await fetch(path, { headers: headers(storedToken() ?? ""), signal });
  if (!response.ok) throw await failure(response);
  onOpen?.();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // Blocks are cut by index and the rest kept once per chunk: a chunk may hold thousands of events.
    let start = 0;
    let cut;
    while ((cut = buffer.indexOf("\n\n", start)) >= 0) {
      const block = buffer.slice(start, cut);
      start = cut + 2;
      let id;
      let type = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        const v = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
        if (field === "id") id = v;
        else if (field === "event") type = v;
        else if (field === "data") data.push(v);
      }
      if (data.length > 0) onEvent(type, JSON.parse(data.join("\n")), id);
    }
    buffer = buffer.slice(start);
  }
}

/** Waits before reconnect `attempt` (capped exponential backoff); false when aborted first. */
function backoff(attempt, signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(!signal.aborted), Math.min(5000, 250 * 2 ** attempt));
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/**
 * Follows a task's events: `onEvent(type, data, id)` per event in order, resuming after the last
 * seq seen when the connection drops; resolves once the `result` event ended the stream.
 */
export async function followEvents(taskID, { onEvent, signal }) {
  let after = 0;
  let ended = false;
  for (let attempt = 0; !signal.aborted; attempt += 1) {
    try {
      await readSse(`/v1/tasks/${encodeURIComponent(taskID)}/events?after=${after}`, {
        signal,
        onOpen: () => (attempt = 0),
        onEvent(type, data, id) {
          if (id !== undefined) after = Number(id);
          if (type === "result") ended = true;
          onEvent(type, data, id);
        },
      });
      if (ended) return;
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
      if (attempt > 20) throw err;
    }
    // The stream closed without a result (gateway restart, proxy): resume after the last seq.
    if (!(await backoff(attempt, signal))) return;
  }
}

/**
 * Follows the task index's changes (`GET /v1/task-changes`): `onOpen()` each time the stream is
 * (re)opened (list then: nothing after it is missed), `onTask(view)` per change. Runs until aborted.
 */
export async function followTaskChanges({ onOpen, onTask, signal }) {
  for (let attempt = 0; !signal.aborted; attempt += 1) {
    try {
      await readSse("/v1/task-changes", {
        signal,
        onOpen() {
          attempt = 0;
          onOpen();
        },
        onEvent: (type, data) => type === "task" && onTask(data),
      });
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof ApiError && err.status < 500) throw err;
    }
    if (!(await backoff(attempt, signal))) return;
  }
}
