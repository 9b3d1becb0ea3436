import type { Context } from "hono";
import { isValidName, nameProblem } from "@station-coding/protocol";
import type { Logger } from "pino";
import type { Principal } from "./auth.js";
import type { GatewayMetrics } from "./metrics.js";
import type { GatewayNamespace, Namespaces } from "./namespaces.js";
import { HttpProblem } from "./problem.js";
import type { StreamSlots } from "./stream-guard.js";

/** The per-request values the gateway's middleware sets. */
export interface GatewayEnv {
  Variables: { principal: Principal };
}

/** What every route handler needs. */
export interface RouteDeps {
  namespaces: Namespaces;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Interval of SSE heartbeat comments, ms. */
  heartbeatMs: number;
  /** Longest `?wait=` of a result long-poll, ms. */
  maxWaitMs: number;
  /** Open streams and long-polls, per token and in all. */
  streams: StreamSlots;
  /** A stream client that has not taken a write for this long (ms) is cut off. */
  stallMs: number;
  /** Aborted when the gateway closes: ends every open event stream. */
  closing: AbortSignal;
}

/** The namespace of a request and the query suffix that keeps its org selector in links. */
export function namespaceOf(
  c: Context<GatewayEnv>,
  deps: RouteDeps,
): { ns: GatewayNamespace; orgQuery: string } {
  const requested = c.req.query("org") ?? c.req.header("station-org");
  const ns = deps.namespaces.resolve(c.get("principal"), requested);
  const orgQuery = requested !== undefined && requested !== "" ? `?org=${encodeURIComponent(requested)}` : "";
  return { ns, orgQuery };
}

/** The `{taskID}` of a path: a name that breaks the naming rules cannot exist, so it is a 404. */
export function taskIDOf(c: Context<GatewayEnv>): string {
  const taskID = c.req.param("taskID") ?? "";
  if (!isValidName(taskID)) {
    throw new HttpProblem(
      404,
      "not-found",
      `task ${JSON.stringify(taskID)}: not found (${nameProblem(taskID) ?? "not a task id"})`,
      {
        field: "path.taskID",
      },
    );
  }
  return taskID;
}

/** Reads a JSON body: 400 for one that is not JSON; an empty body is `undefined` when allowed. */
export async function jsonBody(
  c: Context<GatewayEnv>,
  options: { optional?: boolean } = {},
): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (options.optional) return undefined;
    throw new HttpProblem(400, "invalid-json", "the request body is empty: send a JSON object", {
      field: "body",
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpProblem(
      400,
      "invalid-json",
      `the request body is not valid JSON: ${(err as Error).message}`,
      {
        field: "body",
      },
    );
  }
}

/** A 422 from zod issues, each naming its field under `body`. */
export function schemaProblem(
  what: string,
  issues: readonly { path: readonly PropertyKey[]; message: string }[],
): HttpProblem {
  const errors = issues.slice(0, 20).map((issue) => ({
    field: ["body", ...issue.path.map(String)].join("."),
    message: issue.message,
  }));
  const first = errors[0];
  const detail = first ? `${what}: ${first.field}: ${first.message}` : `${what}: invalid`;
  return new HttpProblem(422, "validation-failed", detail, {
    ...(first ? { field: first.field } : {}),
    errors,
  });
}
