// The station-coding web console: preact + htm (one vendored ES module), no build step. Every
// view reads the gateway's public HTTP API (api.js); the role of the signed-in token decides which
// write actions exist at all. Routes live in the URL hash so that a link reopens the same view.
import { html, render, useCallback, useEffect, useRef, useState } from "/console/vendor/preact-htm.js";
import {
  ApiError,
  api,
  followEvents,
  followTaskChanges,
  setOrg,
  signIn,
  signOut,
  storedOrg,
  storedToken,
} from "/console/api.js";
import { addEvent, describeStep, emptyStory, parseDiff } from "/console/story.js";

const STATUSES = ["queued", "running", "completed", "error", "cancelled", "timeout"];
const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = 2000;

// ---------------------------------------------------------------------------------------------
// Routing: "#/tasks?status=running" -> { path: ["tasks"], query: URLSearchParams }

function readRoute() {
  const raw = location.hash.replace(/^#/, "") || "/overview";
  const [path, search = ""] = raw.split("?");
  return {
    path: path.split("/").filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(search),
  };
}

function useRoute() {
  const [route, setRoute] = useState(readRoute);
  useEffect(() => {
    const onChange = () => setRoute(readRoute());
    addEventListener("hashchange", onChange);
    return () => removeEventListener("hashchange", onChange);
  }, []);
  return route;
}

function href(path, query) {
  const q = query ? new URLSearchParams([...query].filter(([, v]) => v !== "")).toString() : "";
  return `#${path}${q ? `?${q}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const fmt = {
  time: (iso) => (iso ? new Date(iso).toLocaleString() : "—"),
  duration(ms) {
    if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
    if (ms < 1000) return `${Math.round(ms)} ms`;
    if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
    return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  },
  cost: (usd) => (usd === undefined || usd === null ? "—" : `$${usd.toFixed(usd < 1 ? 4 : 2)}`),
  num: (n) => (n === undefined || n === null ? "—" : n.toLocaleString()),
};

function durationOf(task) {
  if (task.metrics?.duration !== undefined) return task.metrics.duration;
  if (!task.startedAt) return undefined;
  const end = task.finishedAt ? Date.parse(task.finishedAt) : Date.now();
  return end - Date.parse(task.startedAt);
}

function excerpt(text, n = 80) {
  if (!text) return "";
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > n ? `${flat.slice(0, n - 1)}…` : flat;
}

const canWrite = (me) => me.role === "operator" || me.role === "admin";

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** Runs `load` now and every POLL_MS unless paused; returns [data, error, reload]. */
function usePolling(load, deps, paused = false) {
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
    const timer = setInterval(() => void reload(), POLL_MS);
    return () => clearInterval(timer);
  }, [paused, ...deps]);
  return [state.data, state.error, reload];
}

function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error instanceof ApiError ? error.message : String(error)}</p>`;
}

function StatusBadge({ status }) {
  return html`<span class=${`status status-${status}`}>${status}</span>`;
}

function LiveToggle({ paused, onToggle }) {
  return html`<button
    type="button"
    class="toggle"
    aria-pressed=${paused ? "true" : "false"}
    onClick=${onToggle}
  >
    ${paused ? "Resume live updates" : "Pause live updates"}
  </button>`;
}

// ---------------------------------------------------------------------------------------------
// Sign-in and the frame

function SignIn({ onSignedIn, reason }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    try {
      onSignedIn(await signIn(token.trim()));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>station-coding console</h1>
    <form onSubmit=${submit}>
      <label for="token">Gateway token</label>
      <input
        id="token"
        type="password"
        autocomplete="off"
        required
        value=${token}
        onInput=${(e) => setToken(e.target.value)}
      />
      <p class="hint">Kept in this tab's session storage only; closing the tab signs you out.</p>
      <button type="submit" disabled=${busy}>Sign in</button>
      <${ErrorNote} error=${error} />
    </form>
  </main>`;
}

const NAV = [
  ["overview", "Overview"],
  ["tasks", "Tasks"],
  ["submit", "Submit", true],
  ["sessions", "Sessions"],
  ["workers", "Workers"],
  ["dead-letters", "Dead letters"],
];

function Frame({ me, route, onSignOut, children }) {
  const org = storedOrg();
  return html`<div class="frame">
    <header>
      <a class="brand" href="#/overview">station-coding</a>
      <nav aria-label="Main">
        <ul>
          ${NAV.filter(([, , write]) => !write || canWrite(me)).map(
            ([id, label]) =>
              html`<li>
                <a href=${`#/${id}`} aria-current=${route.path[0] === id ? "page" : undefined}>${label}</a>
              </li>`,
          )}
        </ul>
      </nav>
      <div class="who">
        ${
          me.orgs.length > 1
            ? html`<label
                >Org
                <select
                  value=${org}
                  onChange=${(e) => {
                    setOrg(e.target.value);
                    location.reload();
                  }}
                >
                  ${me.orgs.map((o) => html`<option value=${o}>${o}</option>`)}
                </select></label
              >`
            : me.org
              ? html`<span>org ${me.org}</span>`
              : null
        }
        <span>${me.name} (${me.role})</span>
        <button type="button" onClick=${onSignOut}>Sign out</button>
      </div>
    </header>
    <main>${children}</main>
  </div>`;
}

function App() {
  const route = useRoute();
  const [me, setMe] = useState(undefined);
  const [reason, setReason] = useState(undefined);
  useEffect(() => {
    const token = storedToken();
    if (token === null) {
      setMe(null);
      return;
    }
    signIn(token).then(setMe, (err) => {
      signOut();
      setReason(err);
      setMe(null);
    });
  }, []);
  if (me === undefined) return html`<p class="boot">Signing in…</p>`;
  if (me === null) return html`<${SignIn} onSignedIn=${setMe} reason=${reason} />`;
  const signOutNow = () => {
    signOut();
    setMe(null);
  };
  return html`<${Frame} me=${me} route=${route} onSignOut=${signOutNow}>${view(me, route)}<//>`;
}

function view(me, route) {
  const [head, id] = route.path;
  switch (head) {
    case "tasks":
      return id !== undefined
        ? html`<${TaskDetail} me=${me} taskID=${id} />`
        : html`<${Tasks} me=${me} query=${route.query} />`;
    case "submit":
      return canWrite(me) ? html`<${Submit} />` : html`<p>Your token may not submit tasks.</p>`;
    case "sessions":
      return html`<${Sessions} />`;
    case "workers":
      return html`<${Workers} />`;
    case "dead-letters":
      return html`<${DeadLetters} me=${me} />`;
    default:
      return html`<${Overview} />`;
  }
}

// ---------------------------------------------------------------------------------------------
// Overview

function Overview() {
  const [paused, setPaused] = useState(false);
  const [data, error] = usePolling(
    async () => {
      const [status, recent] = await Promise.all([api("/v1/status"), api("/v1/tasks?limit=200")]);
      return { status, recent: recent.items };
    },
    [],
    paused,
  );
  const alive = data?.status.workers.filter((w) => w.liveness === "alive") ?? [];
  const busy = alive.reduce((n, w) => n + w.inFlight, 0);
  const slots = alive.reduce((n, w) => n + w.concurrency, 0);
  const consumer = data?.status.tasks.consumer;
  const running = data?.recent.filter((t) => t.status === "running").length;
  const cost = data?.recent.reduce((sum, t) => sum + (t.metrics?.cost ?? 0), 0);
  const tokens = data?.recent.reduce((sum, t) => sum + (t.metrics?.tokens ?? 0), 0);
  const cards = [
    ["Queue depth", consumer ? consumer.pending : data?.status.tasks.messages],
    ["Running", running],
    ["Live workers", data ? alive.length : undefined],
    ["Busy slots", data ? `${busy} / ${slots}` : undefined],
    ["Dead letters", data?.status.deadLetters],
    ["Tokens (last 200 tasks)", tokens === undefined ? undefined : fmt.num(tokens)],
    ["Cost (last 200 tasks)", cost === undefined ? undefined : fmt.cost(cost)],
  ];
  return html`<section aria-labelledby="overview-h">
    <div class="title-row">
      <h1 id="overview-h">Overview</h1>
      <${LiveToggle} paused=${paused} onToggle=${() => setPaused(!paused)} />
    </div>
    <${ErrorNote} error=${error} />
    <dl class="cards">
      ${cards.map(
        ([label, value]) =>
          html`<div class="card">
            <dt>${label}</dt>
            <dd>${value ?? "…"}</dd>
          </div>`,
      )}
    </dl>
    <h2>Workers</h2>
    <${WorkerTable} workers=${data?.status.workers ?? []} />
    <h2>Latest tasks</h2>
    <table>
      <caption>
        The ten newest (<a href="#/tasks">all tasks</a
        >)
      </caption>
      <thead>
        <tr>
          <th scope="col">Task</th>
          <th scope="col">Status</th>
          <th scope="col">Worker</th>
          <th scope="col">Duration</th>
          <th scope="col">Prompt</th>
        </tr>
      </thead>
      <tbody>
        ${(data?.recent ?? []).slice(0, 10).map(
          (t) =>
            html`<tr key=${t.taskID}>
              <th scope="row"><a href=${`#/tasks/${encodeURIComponent(t.taskID)}`}>${t.taskID}</a></th>
              <td><${StatusBadge} status=${t.status} /></td>
              <td>${t.worker ?? "—"}</td>
              <td>${fmt.duration(durationOf(t))}</td>
              <td class="prompt">${excerpt(t.prompt, 60)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

// ---------------------------------------------------------------------------------------------
// Tasks

const FILTERS = ["status", "session", "worker", "since", "q"];
const MAX_ROWS = 1000;

/** Whether a task view passes the table's filters (the ones the list API takes, and `q`). */
function matches(task, filters) {
  if (filters.status && !filters.status.split(",").includes(task.status)) return false;
  if (filters.session && task.session !== filters.session) return false;
  if (filters.worker && task.worker !== filters.worker) return false;
  if (filters.since && (!task.submittedAt || Date.parse(task.submittedAt) < Date.parse(filters.since)))
    return false;
  if (filters.q && !(task.prompt ?? "").toLowerCase().includes(filters.q.toLowerCase())) return false;
  return true;
}

const newestFirst = (a, b) =>
  (b.submittedAt ?? "").localeCompare(a.submittedAt ?? "") || b.taskID.localeCompare(a.taskID);

/**
 * The task table's rows: one list, then every change of the task index pushed over SSE
 * (`/v1/task-changes`) applied on top, at most one render a frame. Paused: the stream is closed and
 * the rows stay as they are; resuming lists again and follows again.
 */
function useLiveTasks(filters, key, paused) {
  const [state, setState] = useState({ rows: undefined, error: undefined });
  const list = useCallback(async () => {
    const params = new URLSearchParams({ limit: String(MAX_ROWS) });
    for (const f of ["status", "session", "worker", "since"]) if (filters[f]) params.set(f, filters[f]);
    return (await api(`/v1/tasks?${params}`)).items.filter((t) => matches(t, filters));
  }, [key]);
  const reload = useCallback(async () => {
    try {
      setState({ rows: await list(), error: undefined });
    } catch (error) {
      setState((s) => ({ ...s, error }));
    }
  }, [list]);
  useEffect(() => {
    if (paused) return undefined;
    const controller = new AbortController();
    let rows = new Map();
    let early = [];
    let listed = false;
    let scheduled = false;
    const publish = () => {
      scheduled = false;
      const sorted = [...rows.values()].sort(newestFirst).slice(0, MAX_ROWS);
      setState({ rows: sorted, error: undefined });
    };
    const apply = (task) => {
      if (matches(task, filters)) rows.set(task.taskID, task);
      else rows.delete(task.taskID);
    };
    followTaskChanges({
      signal: controller.signal,
      onOpen() {
        listed = false;
        list().then(
          (items) => {
            if (controller.signal.aborted) return;
            rows = new Map(items.map((t) => [t.taskID, t]));
            for (const task of early) apply(task);
            early = [];
            listed = true;
            publish();
          },
          (error) => setState((s) => ({ ...s, error })),
        );
      },
      onTask(task) {
        if (!listed) {
          early.push(task);
          return;
        }
        apply(task);
        if (!scheduled) {
          scheduled = true;
          requestAnimationFrame(publish);
        }
      },
    }).catch((error) => setState((s) => ({ ...s, error })));
    return () => controller.abort();
  }, [key, paused]);
  return [state.rows, state.error, reload];
}

function Tasks({ me, query }) {
  const filters = Object.fromEntries(FILTERS.map((f) => [f, query.get(f) ?? ""]));
  const key = FILTERS.map((f) => filters[f]).join("|");
  const [paused, setPaused] = useState(false);
  const [selected, setSelected] = useState(new Set());
  const [note, setNote] = useState(undefined);
  const [data, error, reload] = useLiveTasks(filters, key, paused);
  const rows = data ?? [];

  const apply = (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const q = new URLSearchParams();
    for (const f of FILTERS) {
      const v = String(form.get(f) ?? "").trim();
      if (v) q.set(f, f === "since" ? new Date(v).toISOString() : v);
    }
    location.hash = href("/tasks", q);
  };
  const toggle = (id) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  const cancelSelected = async () => {
    const ids = [...selected].filter((id) => rows.some((t) => t.taskID === id && ACTIVE.has(t.status)));
    const outcomes = await Promise.allSettled(
      ids.map((id) => api(`/v1/tasks/${encodeURIComponent(id)}/cancel`, { method: "POST" })),
    );
    setNote(
      `Asked ${outcomes.filter((o) => o.status === "fulfilled").length} of ${ids.length} tasks to cancel.`,
    );
    setSelected(new Set());
    void reload();
  };
  const replayFailed = async () => {
    const result = await api("/v1/dead-letters/replay", {
      method: "POST",
      json: filters.since ? { since: filters.since } : {},
    });
    setNote(
      `Replayed ${result.replayed.length} dead tasks${result.failed.length ? `; ${result.failed.length} refused` : ""}.`,
    );
    void reload();
  };
  const sinceLocal = filters.since ? toLocalInput(filters.since) : "";
  const writer = canWrite(me);
  return html`<section aria-labelledby="tasks-h">
    <div class="title-row">
      <h1 id="tasks-h">Tasks</h1>
      <${LiveToggle} paused=${paused} onToggle=${() => setPaused(!paused)} />
    </div>
    <form class="filters" onSubmit=${apply} key=${key}>
      <label
        >Status
        <select name="status" value=${filters.status}>
          <option value="">any</option>
          ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
      <label>Session <input name="session" value=${filters.session} /></label>
      <label>Worker <input name="worker" value=${filters.worker} /></label>
      <label>Since <input name="since" type="datetime-local" value=${sinceLocal} /></label>
      <label>Prompt contains <input name="q" type="search" value=${filters.q} /></label>
      <button type="submit">Apply filters</button>
      <a href="#/tasks">Clear</a>
    </form>
    ${
      writer
        ? html`<div class="bulk">
            <button type="button" disabled=${selected.size === 0} onClick=${cancelSelected}>
              Cancel selected (${selected.size})
            </button>
            <button type="button" onClick=${replayFailed}>
              Replay dead tasks${filters.since ? " since the filter's time" : ""}
            </button>
          </div>`
        : null
    }
    <p role="status" class="note">${note ?? ""}</p>
    <${ErrorNote} error=${error} />
    <div class="table-wrap">
      <table class="tasks">
        <caption>
          ${data === undefined ? "Loading tasks…" : `${rows.length} tasks, newest first`}
        </caption>
        <thead>
          <tr>
            ${writer ? html`<th scope="col"><span class="sr-only">Select</span></th>` : null}
            <th scope="col">Task</th>
            <th scope="col">Status</th>
            <th scope="col">Org</th>
            <th scope="col">Session</th>
            <th scope="col">Worker</th>
            <th scope="col">Submitted</th>
            <th scope="col">Duration</th>
            <th scope="col">Tokens</th>
            <th scope="col">Cost</th>
            <th scope="col">Prompt</th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (t) =>
              html`<tr key=${t.taskID} data-task=${t.taskID}>
                ${
                  writer
                    ? html`<td>
                        <input
                          type="checkbox"
                          aria-label=${`Select ${t.taskID}`}
                          checked=${selected.has(t.taskID)}
                          onChange=${() => toggle(t.taskID)}
                        />
                      </td>`
                    : null
                }
                <th scope="row"><a href=${`#/tasks/${encodeURIComponent(t.taskID)}`}>${t.taskID}</a></th>
                <td><${StatusBadge} status=${t.status} /></td>
                <td>${me.org ?? (storedOrg() || "—")}</td>
                <td>${t.session ?? "—"}</td>
                <td>${t.worker ?? "—"}</td>
                <td>${fmt.time(t.submittedAt)}</td>
                <td>${fmt.duration(durationOf(t))}</td>
                <td>${fmt.num(t.metrics?.tokens)}</td>
                <td>${fmt.cost(t.metrics?.cost)}</td>
                <td class="prompt">${excerpt(t.prompt)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---------------------------------------------------------------------------------------------
// Task detail: the run's story, live

function TaskDetail({ me, taskID }) {
  const [task, setTask] = useState(undefined);
  const [error, setError] = useState(undefined);
  const [story, setStory] = useState(() => ({ ...emptyStory(), version: 0 }));
  const [result, setResult] = useState(undefined);
  const [patch, setPatch] = useState(undefined);
  const [note, setNote] = useState(undefined);
  const path = `/v1/tasks/${encodeURIComponent(taskID)}`;

  const loadTask = useCallback(() => api(path).then(setTask, setError), [path]);
  useEffect(() => {
    void loadTask();
    const controller = new AbortController();
    const current = emptyStory();
    let pending = false;
    // Events arrive in bursts: render at most once a frame.
    const flush = () => {
      pending = false;
      setStory({ ...current, version: current.lastSeq });
    };
    followEvents(taskID, {
      signal: controller.signal,
      onEvent(type, data) {
        if (type === "result") {
          setResult(data);
          void loadTask();
          return;
        }
        addEvent(current, data);
        if (!pending) {
          pending = true;
          requestAnimationFrame(flush);
        }
      },
    }).catch(setError);
    return () => controller.abort();
  }, [taskID]);

  // While it runs, the task view changes (worker, attempts): refresh it now and then.
  useEffect(() => {
    if (!task || !ACTIVE.has(task.status) || result) return undefined;
    const timer = setInterval(() => void loadTask(), POLL_MS);
    return () => clearInterval(timer);
  }, [task?.status, result]);

  useEffect(() => {
    if (!result) return;
    api(`${path}/artifacts`)
      .then(async (list) => {
        const item = list.items.find((a) => a.key.endsWith("/changes.patch"));
        setPatch(item ? { key: item.key, text: await api(item.url) } : null);
      })
      .catch(setError);
  }, [result]);

  const cancel = async () => {
    try {
      await api(`${path}/cancel`, {
        method: "POST",
        json: { reason: `cancelled from the console by ${me.name}` },
      });
      setNote("Cancel requested.");
      void loadTask();
    } catch (err) {
      setError(err);
    }
  };
  const replay = async () => {
    try {
      await api(`/v1/dead-letters/${encodeURIComponent(taskID)}/replay`, { method: "POST" });
      setNote("Replayed: the task is queued again.");
      location.reload();
    } catch (err) {
      setError(err);
    }
  };

  const status = result?.status ?? task?.status;
  const m = { ...(task?.metrics ?? {}) };
  const rm = result?.metrics;
  if (rm) {
    m.duration = rm.duration;
    m.cost = rm.cost;
    m.model = rm.model;
    m.tokens = rm.tokens ? rm.tokens.input + rm.tokens.output : m.tokens;
  }
  const writer = canWrite(me);
  return html`<section aria-labelledby="task-h" class="detail">
    <p><a href="#/tasks">← Tasks</a></p>
    <div class="title-row">
      <h1 id="task-h">Task ${taskID}</h1>
      ${status ? html`<${StatusBadge} status=${status} />` : null}
    </div>
    <div class="actions">
      ${writer && status && ACTIVE.has(status) && !result ? html`<button type="button" class="danger" onClick=${cancel}>Cancel task</button>` : null}
      ${writer && (status === "error" || status === "timeout") ? html`<button type="button" onClick=${replay}>Replay task</button>` : null}
      <a href=${`#/tasks/${encodeURIComponent(taskID)}`} class="permalink">Link to this view</a>
    </div>
    <p role="status" class="note">${note ?? ""}</p>
    <${ErrorNote} error=${error} />
    ${
      task
        ? html`<dl class="facts">
            <div>
              <dt>Session</dt>
              <dd>${task.session ?? "—"}</dd>
            </div>
            <div>
              <dt>Worker</dt>
              <dd>${task.worker ?? "—"}</dd>
            </div>
            <div>
              <dt>Attempts</dt>
              <dd>${task.attempts ?? "—"}</dd>
            </div>
            <div>
              <dt>Model</dt>
              <dd>${m.model ?? "—"}</dd>
            </div>
            <div>
              <dt>Tokens</dt>
              <dd>${fmt.num(m.tokens)}</dd>
            </div>
            <div>
              <dt>Cost</dt>
              <dd>${fmt.cost(m.cost)}</dd>
            </div>
            <div>
              <dt>Duration</dt>
              <dd>${fmt.duration(m.duration ?? durationOf(task))}</dd>
            </div>
            <div>
              <dt>Submitted</dt>
              <dd>${fmt.time(task.submittedAt)}</dd>
            </div>
            ${
              result?.workspace
                ? html`<div>
                    <dt>Workspace</dt>
                    <dd>${result.workspace.name ?? "—"}</dd>
                  </div>`
                : null
            }
          </dl>`
        : null
    }
    ${
      task?.prompt
        ? html`<h2>Prompt</h2>
            <pre class="prompt-text">${task.prompt}</pre>`
        : null
    }
    ${
      result
        ? html`<h2>Result</h2>
            ${result.error ? html`<p class="error">${result.errorCode ? `${result.errorCode}: ` : ""}${result.error}</p>` : null}
            <pre class="result-text" data-testid="result">${result.result ?? ""}</pre>`
        : null
    }
    <h2>
      Story
      <span class="count"
        >(${story.items.length} steps, ${story.lastSeq} events${result ? "" : ", live"})</span
      >
    </h2>
    <${Story} story=${story} />
    ${
      result
        ? html`<h2>Changes</h2>
            <${Diff} patch=${patch} />`
        : null
    }
  </section>`;
}

function Story({ story }) {
  if (story.items.length === 0) return html`<p class="muted" data-last-seq="0">No events yet.</p>`;
  return html`<ol class="story" aria-live="polite" aria-relevant="additions" data-last-seq=${story.lastSeq}>
    ${story.items.map((item) => html`<li key=${item.seqs[0]} class=${`ev ev-${item.kind}`} data-seq=${item.seqs[0]}><${StoryItem} item=${item} /></li>`)}
  </ol>`;
}

function StoryItem({ item }) {
  switch (item.kind) {
    case "text":
      return html`<span class="kind">text</span>
        <p class="text">${item.content}</p>`;
    case "thinking":
      return html`<span class="kind">thinking</span>
        <p class="thinking">${item.content}</p>`;
    case "tool": {
      const t = item.tool;
      return html`<span class="kind">tool</span>
        <details open=${item.running}>
          <summary>
            <code>${t.name ?? "tool"}</code>${t.title ? ` ${t.title}` : ""}
            ${item.running ? html` <em>running…</em>` : html` · ${t.status ?? "done"}${t.exitCode !== undefined ? ` · exit ${t.exitCode}` : ""}${t.duration !== undefined ? ` · ${fmt.duration(t.duration)}` : ""}`}
          </summary>
          ${
            t.args
              ? html`<h3>Arguments</h3>
                  <pre>${JSON.stringify(t.args, null, 2)}</pre>`
              : null
          }
          ${
            t.output !== undefined
              ? html`<h3>Output${t.truncated ? " (truncated)" : ""}</h3>
                  <pre>${t.output}</pre>`
              : null
          }
          ${t.error ? html`<p class="error">${t.error}</p>` : null}
        </details>`;
    }
    case "permission": {
      const p = item.permission;
      return html`<span class="kind">permission</span>
        <p>
          ${p.permission ?? p.kind}${p.patterns?.length ? ` ${p.patterns.join(", ")}` : ""}:
          <strong>${p.decision}</strong>${p.reason ? ` (${p.reason})` : ""}
        </p>`;
    }
    case "error":
      return html`<span class="kind">error</span>
        <p class="error">${item.code ? `${item.code}: ` : ""}${item.content}</p>`;
    default:
      return html`<span class="kind">${item.kind === "git" ? "git" : "step"}</span>
        <p>${describeStep(item.event)}</p>`;
  }
}

function Diff({ patch }) {
  if (patch === undefined) return html`<p class="muted">Loading the diff…</p>`;
  if (patch === null || patch.text.trim() === "") return html`<p class="muted">No changes.</p>`;
  const files = parseDiff(patch.text);
  return html`<div class="diff" aria-label="Diff">
    ${files.map(
      (f) =>
        html`<section class="diff-file">
          <h3>
            <code>${f.name}</code> <span class="add">+${f.added}</span> <span class="del">−${f.deleted}</span>
          </h3>
          <pre>${f.lines.map((l) => html`<span class=${`dl dl-${l.kind}`}>${l.text}</span>`)}</pre>
        </section>`,
    )}
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// Submit

function Submit() {
  const [error, setError] = useState(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    const get = (k) => String(form.get(k) ?? "").trim();
    const task = { prompt: String(form.get("prompt") ?? "") };
    if (get("session")) task.session = { name: get("session") };
    if (get("repo"))
      task.workspace = { git: { url: get("repo"), ...(get("branch") ? { branch: get("branch") } : {}) } };
    if (get("timeout")) task.timeout = Math.round(Number(get("timeout")) * 60_000);
    if (get("model")) {
      const [providerID, ...rest] = get("model").split("/");
      task.model = { providerID, modelID: rest.join("/") };
    }
    setBusy(true);
    try {
      const accepted = await api("/v1/tasks", { method: "POST", json: task });
      location.hash = `#/tasks/${encodeURIComponent(accepted.taskID)}`;
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return html`<section aria-labelledby="submit-h">
    <h1 id="submit-h">Submit a task</h1>
    <form class="submit" onSubmit=${submit}>
      <label for="prompt">Prompt</label>
      <textarea id="prompt" name="prompt" rows="8" required></textarea>
      <label for="session">Session</label>
      <input id="session" name="session" placeholder="optional: continue a session by name" />
      <label for="repo">Git repository</label>
      <input id="repo" name="repo" placeholder="https://github.com/org/repo.git" />
      <label for="branch">Branch</label>
      <input id="branch" name="branch" />
      <label for="timeout">Timeout (minutes)</label>
      <input id="timeout" name="timeout" type="number" min="1" step="1" />
      <label for="model">Model</label>
      <input id="model" name="model" placeholder="provider/model, e.g. anthropic/claude-sonnet-4" />
      <button type="submit" disabled=${busy}>Submit task</button>
      <${ErrorNote} error=${error} />
    </form>
  </section>`;
}

// ---------------------------------------------------------------------------------------------
// Sessions, workers, dead letters

function Sessions() {
  const [data, error] = usePolling(() => api("/v1/sessions").then((r) => r.items), []);
  return html`<section aria-labelledby="sessions-h">
    <h1 id="sessions-h">Sessions</h1>
    <${ErrorNote} error=${error} />
    <table>
      <caption>
        ${data ? `${data.length} sessions` : "Loading…"}
      </caption>
      <thead>
        <tr>
          <th scope="col">Session</th>
          <th scope="col">Worker</th>
          <th scope="col">Workspace</th>
          <th scope="col">Repository</th>
          <th scope="col">Messages</th>
          <th scope="col">Last task</th>
          <th scope="col">Last used</th>
        </tr>
      </thead>
      <tbody>
        ${(data ?? []).map(
          (s) =>
            html`<tr key=${s.sessionName}>
              <th scope="row">
                <a href=${href("/tasks", new URLSearchParams({ session: s.sessionName }))}
                  >${s.sessionName}</a
                >
              </th>
              <td>${s.workerID ?? "—"}</td>
              <td>${s.workspaceName}</td>
              <td>${s.git ? `${s.git.url} (${s.git.branch})` : "—"}</td>
              <td>${fmt.num(s.messageCount)}</td>
              <td>
                ${s.lastTaskID ? html`<a href=${`#/tasks/${encodeURIComponent(s.lastTaskID)}`}>${s.lastTaskID}</a>` : "—"}
              </td>
              <td>${fmt.time(s.lastUsed)}</td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function WorkerTable({ workers }) {
  return html`<table>
    <caption>
      ${workers.length} workers
    </caption>
    <thead>
      <tr>
        <th scope="col">Worker</th>
        <th scope="col">Liveness</th>
        <th scope="col">State</th>
        <th scope="col">Busy slots</th>
        <th scope="col">Completed</th>
        <th scope="col">Failed</th>
        <th scope="col">Host</th>
        <th scope="col">Heartbeat</th>
      </tr>
    </thead>
    <tbody>
      ${workers.map(
        (w) =>
          html`<tr key=${w.workerID}>
            <th scope="row">
              <a href=${href("/tasks", new URLSearchParams({ worker: w.workerID }))}>${w.workerID}</a>
            </th>
            <td>${w.liveness}</td>
            <td>${w.state}</td>
            <td>${w.inFlight} / ${w.concurrency}</td>
            <td>${fmt.num(w.completed)}</td>
            <td>${fmt.num(w.failed)}</td>
            <td>${w.hostname}</td>
            <td>${fmt.duration(w.heartbeatAge)} ago</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

function Workers() {
  const [data, error] = usePolling(() => api("/v1/workers").then((r) => r.items), []);
  return html`<section aria-labelledby="workers-h">
    <h1 id="workers-h">Workers</h1>
    <${ErrorNote} error=${error} />
    <${WorkerTable} workers=${data ?? []} />
  </section>`;
}

function DeadLetters({ me }) {
  const [data, error, reload] = usePolling(() => api("/v1/dead-letters").then((r) => r.items), []);
  const [note, setNote] = useState(undefined);
  const replay = async (taskID) => {
    try {
      await api(`/v1/dead-letters/${encodeURIComponent(taskID)}/replay`, { method: "POST" });
      setNote(`Replayed ${taskID}.`);
    } catch (err) {
      setNote(err.message);
    }
    void reload();
  };
  const writer = canWrite(me);
  return html`<section aria-labelledby="dlq-h">
    <h1 id="dlq-h">Dead letters</h1>
    <p role="status" class="note">${note ?? ""}</p>
    <${ErrorNote} error=${error} />
    <table>
      <caption>
        ${data ? `${data.length} dead letters` : "Loading…"}
      </caption>
      <thead>
        <tr>
          <th scope="col">Task</th>
          <th scope="col">Reason</th>
          <th scope="col">Code</th>
          <th scope="col">Attempts</th>
          <th scope="col">Dead since</th>
          ${writer ? html`<th scope="col">Action</th>` : null}
        </tr>
      </thead>
      <tbody>
        ${(data ?? []).map(
          (d) =>
            html`<tr key=${d.taskID}>
              <th scope="row"><a href=${`#/tasks/${encodeURIComponent(d.taskID)}`}>${d.taskID}</a></th>
              <td>${excerpt(d.reason, 120)}</td>
              <td>${d.errorCode ?? "—"}</td>
              <td>${d.attempts}</td>
              <td>${fmt.time(d.deadAt)}</td>
              ${writer ? html`<td><button type="button" onClick=${() => replay(d.taskID)}>Replay ${d.taskID}</button></td>` : null}
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

render(html`<${App} />`, document.getElementById("app"));
