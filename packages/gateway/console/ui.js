// Shared pieces of the console's views: routing by URL hash, formatting, polling, small components.
import { html, useCallback, useEffect, useRef, useState } from "/console/vendor/preact-htm.js";
import { ApiError } from "/console/api.js";

export const STATUSES = ["queued", "running", "completed", "error", "cancelled", "timeout"];
export const ACTIVE = new Set(["queued", "running"]);
export const POLL_MS = 2000;

// ---------------------------------------------------------------------------------------------
// Routing: "#/tasks?status=running" -> { path: ["tasks"], query: URLSearchParams }

export function readRoute() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, search = ""] = raw.split("?");
  return {
    path: path.split("/").filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(search),
  };
}

export function useRoute() {
  const [route, setRoute] = useState(readRoute);
  useEffect(() => {
    const onChange = () => setRoute(readRoute());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

export function href(path, query) {
  const q = query ? new URLSearchParams([...query].filter(([, v]) => v !== "")).toString() : "";
  return `#${path}${q ? `?${q}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

// One formatter each, made once: toLocaleString builds a new one per call, which is most of the
// cost of drawing a table of 1,000 rows. Same output as Date#toLocaleString and Number#toLocaleString.
const TIME = new Intl.DateTimeFormat(undefined, {
  year: "numeric",
  month: "numeric",
  day: "numeric",
  hour: "numeric",
  minute: "numeric",
  second: "numeric",
});
const NUMBER = new Intl.NumberFormat();

export const fmt = {
  time: (iso) => (iso ? TIME.format(new Date(iso)) : "—"),
  duration(ms) {
    if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  },
  cost: (usd) => (usd === undefined || usd === null ? "—" : `$${usd.toFixed(usd < 1 ? 4 : 2)}`),
  num: (n) => (n === undefined || n === null ? "—" : NUMBER.format(n)),
};

export function durationOf(task) {
  if (task.metrics?.duration !== undefined) return task.metrics.duration;
  if (!task.startedAt) return undefined;
  const end = task.finishedAt ? Date.parse(task.finishedAt) : Date.now();
  return end - Date.parse(task.startedAt);
}

export function excerpt(text, n = 80) {
  if (!text) return "";
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

export const canWrite = (me) => me.role === "operator" || me.role === "admin";

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** Runs `load` now and every `every` ms unless paused; returns [data, error, reload]. */
export function usePolling(load, deps, paused = false, every = POLL_MS) {
  const [state, setState] = useState({ data: undefined, error: undefined });
  const loadRef = useRef(load);
  loadRef.current = load;
  const reload = useCallback(async () => {
    try {
      const data = await loadRef.current();
      setState({ data, error: undefined });
    } catch (error) {
      setState((s) => ({ data: s.data, error }));
    }
  }, []);
  useEffect(() => {
    setState({ data: undefined, error: undefined });
    void reload();
  }, deps);
  useEffect(() => {
    if (paused) return undefined;
    const timer = setInterval(() => void reload(), every);
    return () => clearInterval(timer);
  }, [paused, every, ...deps]);
  return [state.data, state.error, reload];
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error instanceof ApiError ? error.message : String(error)}</p>`;
}

export function StatusBadge({ status }) {
  return html`<span class=${`status status-${status}`}>${status}</span>`;
}

export function LiveToggle({ paused, onToggle }) {
  return html`<button
    type="button"
    class="toggle"
    aria-pressed=${paused ? "true" : "false"}
    onClick=${onToggle}
  >
    ${paused ? "Resume live updates" : "Pause live updates"}
  </button>`;
}
