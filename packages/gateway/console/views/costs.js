// The cost table (GET /v1/costs): finished tasks, tokens and cost by org and model, over a period
// kept in the URL (#/costs?days=7).
import { html } from "/console/vendor/preact-htm.js";
import { api } from "/console/api.js";
import { ErrorNote, fmt, href, usePolling } from "/console/ui.js";

const PERIODS = [
  ["", "everything the index keeps"],
  ["1", "the last day"],
  ["7", "the last 7 days"],
  ["30", "the last 30 days"],
];
const COSTS_POLL_MS = 15_000;

function sum(lines) {
  const total = { tasks: 0, inputTokens: 0, outputTokens: 0, tokens: 0, cost: 0 };
  for (const l of lines) for (const k of Object.keys(total)) total[k] += l[k];
  return total;
}

function TotalRow({ label, total }) {
  return html`<tr>
    <th scope="row" colspan="3">${label}</th>
    <td>${fmt.num(total.tasks)}</td>
    <td>${fmt.num(total.inputTokens)}</td>
    <td>${fmt.num(total.outputTokens)}</td>
    <td>${fmt.num(total.tokens)}</td>
    <td>${fmt.cost(total.cost)}</td>
  </tr>`;
}

export function Costs({ query }) {
  const days = query.get("days") ?? "";
  const [data, error] = usePolling(
    () => {
      const since = days ? new Date(Date.now() - Number(days) * 86_400_000).toISOString() : "";
      return api(`/v1/costs${since ? `?since=${encodeURIComponent(since)}` : ""}`, { everyOrg: true });
    },
    [days],
    false,
    COSTS_POLL_MS,
  );
  const lines = data?.items ?? [];
  const orgs = [...new Set(lines.map((l) => l.org))];
  const period = PERIODS.find(([d]) => d === days)?.[1] ?? `the last ${days} days`;
  return html`<section aria-labelledby="costs-h">
    <h1 id="costs-h">Costs</h1>
    <label
      >Period
      <select
        value=${days}
        onChange=${(e) => (location.hash = href("/costs", new URLSearchParams({ days: e.target.value })))}
      >
        ${PERIODS.map(([d, label]) => html`<option value=${d}>${label}</option>`)}
      </select>
    </label>
    <${ErrorNote} error=${error} />
    <div class="table-wrap">
      <table class="costs">
        <caption>
          ${data ? `Finished tasks, tokens and cost by org and model, ${period}` : "Loading costs…"}
        </caption>
        <thead>
          <tr>
            <th scope="col">Org</th>
            <th scope="col">Model</th>
            <th scope="col">Provider</th>
            <th scope="col">Tasks</th>
            <th scope="col">Input tokens</th>
            <th scope="col">Output tokens</th>
            <th scope="col">Tokens</th>
            <th scope="col">Cost</th>
          </tr>
        </thead>
        <tbody>
          ${lines.map(
            (l) =>
              html`<tr key=${`${l.org}\u0000${l.provider ?? ""}\u0000${l.model ?? ""}`}>
                <td>${l.org || "—"}</td>
                <th scope="row">${l.model ?? "(none named)"}</th>
                <td>${l.provider ?? "—"}</td>
                <td>${fmt.num(l.tasks)}</td>
                <td>${fmt.num(l.inputTokens)}</td>
                <td>${fmt.num(l.outputTokens)}</td>
                <td>${fmt.num(l.tokens)}</td>
                <td>${fmt.cost(l.cost)}</td>
              </tr>`,
          )}
        </tbody>
        <tfoot>
          ${
            orgs.length > 1
              ? orgs.map(
                  (org) =>
                    html`<${TotalRow}
                      key=${org}
                      label=${`Total, org ${org}`}
                      total=${sum(lines.filter((l) => l.org === org))}
                    />`,
                )
              : null
          }
          <${TotalRow} label="Total" total=${sum(lines)} />
        </tfoot>
      </table>
    </div>
  </section>`;
}
