// The task table: filters kept in the URL, live updates pushed over SSE, bulk cancel and replay.
import { Component, html, useCallback, useEffect, useState } from "/console/vendor/preact-htm.js";
import { api, followTaskChanges, storedOrg } from "/console/api.js";
import {
  ACTIVE,
  ErrorNote,
  LiveToggle,
  STATUSES,
  StatusBadge,
  canWrite,
  durationOf,
  excerpt,
  fmt,
  href,
} from "/console/ui.js";

const FILTERS = ["status", "session", "worker", "since", "until", "q"];
const TIMES = new Set(["since", "until"]);
const FAILED = new Set(["error", "timeout"]);
const MAX_ROWS = 1000;

/** Whether a task view passes the table's filters (as the list API applies them), for live changes. */
function matches(task, filters) {
  if (filters.status && !filters.status.split(",").includes(task.status)) return false;
  if (filters.session && task.session !== filters.session) return false;
  if (filters.worker && task.worker !== filters.worker) return false;
  if (filters.since && (!task.submittedAt || Date.parse(task.submittedAt) < Date.parse(filters.since)))
    return false;
  if (filters.until && (!task.submittedAt || Date.parse(task.submittedAt) >= Date.parse(filters.until)))
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
    for (const f of FILTERS) if (filters[f]) params.set(f, filters[f]);
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

export function Tasks({ me, query }) {
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
      if (v) q.set(f, TIMES.has(f) ? new Date(v).toISOString() : v);
    }
    location.hash = href("/tasks", q);
  };
  // From the state it changes, not a closure's copy: a row that did not re-render keeps an old toggle.
  const toggle = (id) =>
    setSelected((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
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
  // A failed task runs again only from its dead letter: one that failed for good has none.
  const replaySelected = async () => {
    const failed = [...selected].filter((id) => rows.some((t) => t.taskID === id && FAILED.has(t.status)));
    const letters = new Set((await api("/v1/dead-letters")).items.map((d) => d.taskID));
    const ids = failed.filter((id) => letters.has(id));
    const outcomes = await Promise.allSettled(
      ids.map((id) => api(`/v1/dead-letters/${encodeURIComponent(id)}/replay`, { method: "POST" })),
    );
    const replayed = outcomes.filter((o) => o.status === "fulfilled").length;
    const without = failed.length - ids.length;
    setNote(
      `Replayed ${replayed} of ${failed.length} failed tasks` +
        (without ? `; ${without} failed for good (no dead letter to replay)` : "") +
        (replayed < ids.length ? `; ${ids.length - replayed} refused` : "") +
        ".",
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
  const untilLocal = filters.until ? toLocalInput(filters.until) : "";
  const writer = canWrite(me);
  const org = me.org ?? (storedOrg() || "—");
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
      <label>Until <input name="until" type="datetime-local" value=${untilLocal} /></label>
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
            <button type="button" disabled=${selected.size === 0} onClick=${replaySelected}>
              Replay selected (${selected.size})
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
              html`<${TaskRow}
                key=${t.taskID}
                task=${t}
                writer=${writer}
                org=${org}
                checked=${selected.has(t.taskID)}
                onToggle=${toggle}
              />`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}

/**
 * One row of the table. The live list keeps a task's object until that task changes, so a row
 * re-renders only when its task, its checkbox or the viewer's role changed: a pushed change
 * costs one row, not 1,000.
 */
class TaskRow extends Component {
  shouldComponentUpdate(next) {
    const p = this.props;
    return (
      next.task !== p.task || next.checked !== p.checked || next.writer !== p.writer || next.org !== p.org
    );
  }
  render({ task: t, writer, org, checked }) {
    return html`<tr data-task=${t.taskID}>
      ${
        writer
          ? html`<td>
              <input
                type="checkbox"
                aria-label=${`Select ${t.taskID}`}
                checked=${checked}
                onChange=${() => this.props.onToggle(t.taskID)}
              />
            </td>`
          : null
      }
      <th scope="row"><a href=${`#/tasks/${encodeURIComponent(t.taskID)}`}>${t.taskID}</a></th>
      <td><${StatusBadge} status=${t.status} /></td>
      <td>${org}</td>
      <td>${t.session ?? "—"}</td>
      <td>${t.worker ?? "—"}</td>
      <td>${fmt.time(t.submittedAt)}</td>
      <td>${fmt.duration(durationOf(t))}</td>
      <td>${fmt.num(t.metrics?.tokens)}</td>
      <td>${fmt.cost(t.metrics?.cost)}</td>
      <td class="prompt">${excerpt(t.prompt)}</td>
    </tr>`;
  }
}

function toLocalInput(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
