// The overview: queue depth, running tasks, workers and their busy slots, dead letters, throughput
// and cost over the last day, the newest tasks.
import { html, useState } from "/console/vendor/preact-htm.js";
import { api } from "/console/api.js";
import { ErrorNote, LiveToggle, StatusBadge, durationOf, excerpt, fmt, usePolling } from "/console/ui.js";
import { WorkerTable } from "/console/views/pages.js";
import { Throughput } from "/console/views/throughput.js";

export function Overview() {
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
    <${Throughput} paused=${paused} />
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
