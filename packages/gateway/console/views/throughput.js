// Tasks finished per minute and their cost per hour over the last day (GET /v1/stats), one chart
// pair per org the token sees. Drawn as SVG here: two series of fixed buckets are one path and a
// few rects, not worth a chart library (and its styles under the console's CSP). Each chart is an
// image with its numbers in words, and the numbers per hour are a table below it.
import { html } from "/console/vendor/preact-htm.js";
import { api } from "/console/api.js";
import { ErrorNote, fmt, usePolling } from "/console/ui.js";

const W = 720;
const H = 120;
const STATS_POLL_MS = 15_000;

// Not "org acme" in labels: the word would make every label here match the header's "Org" picker.
const orgName = (org) => (org === "" ? "this namespace" : org);

/** The per-minute series folded into hours: [{ start, tasks, cost }]. */
function hours(stats, series) {
  return series.costPerHour.map((cost, h) => ({
    start: new Date(Date.parse(stats.from) + h * 3_600_000),
    tasks: series.tasksPerMinute.slice(h * 60, h * 60 + 60).reduce((a, b) => a + b, 0),
    cost,
  }));
}

function MinuteChart({ counts, label }) {
  const max = Math.max(1, ...counts);
  const step = W / counts.length;
  const d = counts
    .map((n, i) =>
      n > 0 ? `M${((i + 0.5) * step).toFixed(2)} ${H}V${(H - (n / max) * (H - 8)).toFixed(2)}` : "",
    )
    .join("");
  return html`<svg
    class="chart"
    viewBox=${`0 0 ${W} ${H}`}
    preserveAspectRatio="none"
    role="img"
    aria-label=${label}
  >
    <line class="chart-axis" x1="0" y1=${H} x2=${W} y2=${H} vector-effect="non-scaling-stroke" />
    <path class="chart-minutes" d=${d} vector-effect="non-scaling-stroke" />
  </svg>`;
}

function HourChart({ costs, label }) {
  const max = Math.max(...costs) || 1;
  const step = W / costs.length;
  return html`<svg
    class="chart"
    viewBox=${`0 0 ${W} ${H}`}
    preserveAspectRatio="none"
    role="img"
    aria-label=${label}
  >
    <line class="chart-axis" x1="0" y1=${H} x2=${W} y2=${H} vector-effect="non-scaling-stroke" />
    ${costs.map((c, i) => {
      const h = (c / max) * (H - 8);
      return c > 0
        ? html`<rect class="chart-hours" x=${i * step + 1} y=${H - h} width=${step - 2} height=${h} />`
        : null;
    })}
  </svg>`;
}

function OrgThroughput({ stats, series, several }) {
  const name = orgName(series.org);
  const span = `the last ${stats.hours} hours`;
  const peak = Math.max(0, ...series.tasksPerMinute);
  const peakCost = Math.max(0, ...series.costPerHour);
  const rows = hours(stats, series);
  return html`<section class="throughput" aria-label=${`Throughput in ${name}`}>
    ${several ? html`<h3>Org ${series.org}</h3>` : null}
    <div class="charts">
      <figure>
        <figcaption>Tasks finished per minute</figcaption>
        <${MinuteChart}
          counts=${series.tasksPerMinute}
          label=${`Tasks finished per minute over ${span} in ${name}: ${series.totals.tasks} in all, at most ${peak} in a minute`}
        />
        <p class="chart-scale"><span>${fmt.time(stats.from)}</span><span>now</span></p>
      </figure>
      <figure>
        <figcaption>Cost per hour</figcaption>
        <${HourChart}
          costs=${series.costPerHour}
          label=${`Cost per hour over ${span} in ${name}: ${fmt.cost(series.totals.cost)} in all, at most ${fmt.cost(peakCost)} in an hour`}
        />
        <p class="chart-scale"><span>${fmt.time(stats.from)}</span><span>now</span></p>
      </figure>
    </div>
    <details>
      <summary>The numbers per hour in ${name}</summary>
      <table>
        <caption>
          Tasks finished and their cost per hour in ${name}
        </caption>
        <thead>
          <tr>
            <th scope="col">Hour from</th>
            <th scope="col">Tasks</th>
            <th scope="col">Cost</th>
          </tr>
        </thead>
        <tbody>
          ${rows.map(
            (r) =>
              html`<tr key=${r.start.getTime()}>
                <th scope="row">${r.start.toLocaleString()}</th>
                <td>${fmt.num(r.tasks)}</td>
                <td>${fmt.cost(r.cost)}</td>
              </tr>`,
          )}
        </tbody>
        <tfoot>
          <tr>
            <th scope="row">Total</th>
            <td>${fmt.num(series.totals.tasks)}</td>
            <td>${fmt.cost(series.totals.cost)}</td>
          </tr>
        </tfoot>
      </table>
    </details>
  </section>`;
}

/** The overview's charts: every org the token sees (an admin: each org, whatever org it picked). */
export function Throughput({ paused }) {
  const [stats, error] = usePolling(() => api("/v1/stats", { everyOrg: true }), [], paused, STATS_POLL_MS);
  return html`<section aria-labelledby="throughput-h">
    <h2 id="throughput-h">The last ${stats?.hours ?? 24} hours</h2>
    <${ErrorNote} error=${error} />
    ${
      stats
        ? stats.orgs.map(
            (series) =>
              html`<${OrgThroughput}
                key=${series.org}
                stats=${stats}
                series=${series}
                several=${stats.orgs.length > 1}
              />`,
          )
        : html`<p>Loading…</p>`
    }
  </section>`;
}
