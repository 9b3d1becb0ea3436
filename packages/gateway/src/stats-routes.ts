import type { Context, Hono } from "hono";
import type { TaskIndexView } from "@station-coding/protocol";
import type { GatewayNamespace } from "./namespaces.js";
import { HttpProblem } from "./problem.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { costsOf, statsWindow, throughputOf } from "./task-stats.js";

/** Longest window of `GET /v1/stats`, in hours (a week). */
const MAX_STATS_HOURS = 168;

/**
 * The aggregate routes, read from the task index views (a scan of each view per request):
 * throughput and cost over time, and the cost table by model. An admin of all orgs gets one entry
 * per org unless it names one; any other token gets its own namespace only.
 */
export function registerStatsRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get("/v1/stats", (c) => {
    const hours = hoursOf(c.req.query("hours"));
    const window = statsWindow(hours);
    const orgs = indexesOf(c, deps).map(([ns, index]) => ({
      org: ns.org ?? "",
      ...throughputOf(index.records(), window),
    }));
    return c.json({
      from: new Date(window.from).toISOString(),
      to: new Date(window.to).toISOString(),
      hours,
      orgs,
    });
  });

  app.get("/v1/costs", (c) => {
    const since = c.req.query("since");
    let sinceMs: number | undefined;
    if (since !== undefined && since !== "") {
      sinceMs = Date.parse(since);
      if (!Number.isFinite(sinceMs)) {
        throw new HttpProblem(422, "validation-failed", `since ${JSON.stringify(since)}: an ISO 8601 time`, {
          field: "query.since",
        });
      }
    }
    const items = indexesOf(c, deps).flatMap(([ns, index]) =>
      costsOf(index.records(), sinceMs).map((line) => ({ org: ns.org ?? "", ...line })),
    );
    return c.json({ since: sinceMs === undefined ? null : new Date(sinceMs).toISOString(), items });
  });
}

/** The visible namespaces with their task index views (503 when one has none). */
function indexesOf(c: Context<GatewayEnv>, deps: RouteDeps): [GatewayNamespace, TaskIndexView][] {
  const requested = c.req.query("org") ?? c.req.header("station-org");
  return deps.namespaces.visible(c.get("principal"), requested).map((ns) => {
    if (!ns.index) {
      throw new HttpProblem(
        503,
        "unavailable",
        `the task index of ${ns.org ?? "this namespace"} is not available`,
      );
    }
    return [ns, ns.index];
  });
}

function hoursOf(value: string | undefined): number {
  if (value === undefined || value === "") return 24;
  const hours = Number(value);
  if (!/^\d+$/.test(value) || hours < 1 || hours > MAX_STATS_HOURS) {
    throw new HttpProblem(
      422,
      "validation-failed",
      `hours ${JSON.stringify(value)}: an integer from 1 to ${MAX_STATS_HOURS}`,
      { field: "query.hours" },
    );
  }
  return hours;
}
