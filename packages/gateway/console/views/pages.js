// Sessions, workers and dead letters.
import { html, useState } from "/console/vendor/preact-htm.js";
import { api } from "/console/api.js";
import { ErrorNote, canWrite, excerpt, fmt, href, usePolling } from "/console/ui.js";

export function Sessions() {
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

export function WorkerTable({ workers }) {
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

export function Workers() {
  const [data, error] = usePolling(() => api("/v1/workers").then((r) => r.items), []);
  return html`<section aria-labelledby="workers-h">
    <h1 id="workers-h">Workers</h1>
    <${ErrorNote} error=${error} />
    <${WorkerTable} workers=${data ?? []} />
  </section>`;
}

export function DeadLetters({ me }) {
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
