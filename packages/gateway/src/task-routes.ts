import { randomUUID } from "node:crypto";
import type { Hono } from "hono";
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from "@opentelemetry/api";
import { WaitTimeoutError } from "@station-coding/dispatcher";
import { Task, isValidName, nameProblem, parseDuration } from "@station-coding/protocol";
import type { TaskIndexStatus, TaskListQuery } from "@station-coding/protocol";
import { requireWriter } from "./auth.js";
import { API_VERSION } from "./openapi.js";
import { HttpProblem, notFound } from "./problem.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { jsonBody, namespaceOf, schemaProblem, taskIDOf } from "./route-context.js";
import { TaskState } from "./schemas.js";
import { describe, taskExists, taskLinks, viewOfRecord } from "./task-view.js";

/** The gateway's tracer name (its server spans continue the caller's `traceparent`). */
export const TRACER_NAME = "@station-coding/gateway";

/** Object store folders a task's objects live in; nothing else of the store is served. */
const ARTIFACT_KEY = /^(input|output|artifacts)\/([^/]+)\/(.+)$/;

/** The task routes: submit, list, status, result, cancel, artifacts. */
export function registerTaskRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.post("/v1/tasks", async (c) => {
    const principal = c.get("principal");
    requireWriter(principal, "submit tasks");
    const { ns, orgQuery } = namespaceOf(c, deps);
    const body = await jsonBody(c);
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new HttpProblem(422, "validation-failed", "the request body must be a JSON object (a task)", {
        field: "body",
      });
    }
    const fields = body as Record<string, unknown>;
    const key = c.req.header("idempotency-key");
    if (key !== undefined && !isValidName(key)) {
      throw new HttpProblem(
        422,
        "validation-failed",
        `Idempotency-Key ${JSON.stringify(String(key).slice(0, 140))}: ${nameProblem(key) ?? "invalid"} (it becomes the taskID)`,
        { field: "header.Idempotency-Key" },
      );
    }
    if (key !== undefined && fields.taskID !== undefined && fields.taskID !== key) {
      throw new HttpProblem(
        422,
        "validation-failed",
        "Idempotency-Key and body.taskID differ: send one, or the same value in both",
        { field: "header.Idempotency-Key" },
      );
    }
    if (fields.org !== undefined && fields.org !== ns.org) {
      throw new HttpProblem(
        422,
        "validation-failed",
        `body.org: the token submits to ${ns.org ?? "the single-tenant namespace"} only`,
        {
          field: "body.org",
        },
      );
    }
    const taskID = (fields.taskID as string | undefined) ?? key ?? `t-${randomUUID()}`;
    const parsed = Task.safeParse({ ...fields, taskID });
    if (!parsed.success) throw schemaProblem("the task is invalid", parsed.error.issues);

    // A repeat of a task the view has seen answers from it; a repeat so close behind the first that
    // the view has not seen it yet is caught by the task stream's duplicate window (Nats-Msg-Id),
    // and a worker drops a task that already has a result: it never runs twice.
    const known = ns.index?.get(taskID);
    if (known) {
      return c.json(
        { taskID, status: known.status, duplicate: true, links: taskLinks(taskID, orgQuery) },
        200,
      );
    }
    // Continue the caller's trace: the dispatch span (and so the worker's) becomes a child of it.
    const carrier = Object.fromEntries(c.req.raw.headers.entries());
    const parent = propagation.extract(ROOT_CONTEXT, carrier);
    const span = trace.getTracer(TRACER_NAME, API_VERSION).startSpan(
      "POST /v1/tasks",
      {
        kind: SpanKind.SERVER,
        attributes: {
          "http.request.method": "POST",
          "http.route": "/v1/tasks",
          "station.task_id": taskID,
          "station.gateway.token": principal.name,
          ...(ns.org !== undefined ? { "station.org": ns.org } : {}),
        },
      },
      parent,
    );
    let handle;
    try {
      handle = await context.with(trace.setSpan(parent, span), () => ns.dispatcher.submit(parsed.data));
      span.setAttribute("http.response.status_code", handle.receipt?.duplicate ? 200 : 202);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: err instanceof Error ? err.message : String(err),
      });
      throw err;
    } finally {
      span.end();
    }
    const duplicate = handle.receipt?.duplicate ?? false;
    deps.logger.info({ taskID, org: ns.org, token: principal.name, duplicate }, "task submitted over HTTP");
    const links = taskLinks(taskID, orgQuery);
    c.header("Location", links.self);
    return c.json({ taskID, status: "queued" as const, duplicate, links }, duplicate ? 200 : 202);
  });

  app.get("/v1/tasks", async (c) => {
    const { ns, orgQuery } = namespaceOf(c, deps);
    if (!ns.index) {
      throw new HttpProblem(
        503,
        "unavailable",
        `the task index of ${ns.org ?? "this namespace"} is not available`,
      );
    }
    const query = listQuery(c.req.query());
    const page = ns.index.list(query);
    return c.json({ items: page.items.map((record) => viewOfRecord(record, orgQuery)), next: page.next });
  });

  app.get("/v1/tasks/:taskID", async (c) => {
    const taskID = taskIDOf(c);
    const { ns, orgQuery } = namespaceOf(c, deps);
    const view = await describe(ns, taskID, orgQuery);
    if (!view) throw notFound(`task ${taskID}`);
    return c.json(view);
  });

  app.get("/v1/tasks/:taskID/result", async (c) => {
    const taskID = taskIDOf(c);
    const { ns, orgQuery } = namespaceOf(c, deps);
    const wait = waitOf(c.req.query("wait"), deps.maxWaitMs);
    const view = await describe(ns, taskID, orgQuery);
    if (!view) throw notFound(`task ${taskID}`);
    if (view.result) return c.json(view.result);
    if (wait > 0) {
      const release = deps.streams.acquire(c.get("principal").name);
      try {
        const result = await ns.dispatcher.task(taskID).result({ timeout: wait, signal: c.req.raw.signal });
        return c.json(result);
      } catch (err) {
        // A caller that hung up ended the wait: no server error (499, "client closed request",
        // as proxies log it; nobody reads it).
        if (c.req.raw.signal.aborted) return new Response(null, { status: 499 });
        if (!(err instanceof WaitTimeoutError)) throw err;
      } finally {
        release();
      }
    }
    const now = await describe(ns, taskID, orgQuery);
    if (now?.result) return c.json(now.result);
    return c.json(now ?? view, 202);
  });

  app.post("/v1/tasks/:taskID/cancel", async (c) => {
    const principal = c.get("principal");
    const taskID = taskIDOf(c);
    requireWriter(principal, "cancel tasks");
    const { ns } = namespaceOf(c, deps);
    const body = await jsonBody(c, { optional: true });
    let reason: string | undefined;
    if (body !== undefined) {
      const r: unknown =
        body !== null && typeof body === "object" ? (body as { reason?: unknown }).reason : undefined;
      if (
        body === null ||
        typeof body !== "object" ||
        Array.isArray(body) ||
        (r !== undefined && typeof r !== "string")
      ) {
        throw new HttpProblem(
          422,
          "validation-failed",
          'body.reason: must be a string (the body is {"reason": "..."})',
          {
            field: "body.reason",
          },
        );
      }
      reason = r;
    }
    if (!(await taskExists(ns, taskID))) throw notFound(`task ${taskID}`);
    await ns.dispatcher.cancel(taskID, reason ?? `cancelled over HTTP by ${principal.name}`);
    deps.logger.info({ taskID, org: ns.org, token: principal.name }, "cancel requested over HTTP");
    return c.json({ taskID, status: "cancelling" as const }, 202);
  });

  app.get("/v1/tasks/:taskID/artifacts", async (c) => {
    const taskID = taskIDOf(c);
    const { ns, orgQuery } = namespaceOf(c, deps);
    const refs = await ns.dispatcher.artifacts.list(taskID);
    if (refs.length === 0 && !(await taskExists(ns, taskID))) throw notFound(`task ${taskID}`);
    const items = refs.map((ref) => ({
      key: ref.key,
      kind: ref.kind,
      size: ref.size,
      ...(ref.digest !== undefined ? { digest: ref.digest } : {}),
      url: `/v1/artifacts/${ref.key.split("/").map(encodeURIComponent).join("/")}${orgQuery}`,
    }));
    return c.json({ items, next: null });
  });

  app.get("/v1/artifacts/*", async (c) => {
    const { ns } = namespaceOf(c, deps);
    const raw = c.req.path.slice("/v1/artifacts/".length);
    let key: string;
    try {
      key = raw.split("/").map(decodeURIComponent).join("/");
    } catch {
      throw notFound("artifact");
    }
    const match = ARTIFACT_KEY.exec(key);
    if (
      !match ||
      !isValidName(match[2]) ||
      key.split("/").some((part) => part === "" || part === "." || part === "..")
    ) {
      throw notFound(`artifact ${JSON.stringify(key.slice(0, 300))}`);
    }
    const body = await ns.dispatcher.artifacts.stream(key);
    return c.body(body, 200, {
      "Content-Type": "application/octet-stream",
      "Content-Disposition": `attachment; filename="${(key.split("/").pop() ?? "artifact").replace(/["\\\r\n]/g, "_")}"`,
    });
  });
}

/** The `?wait=` of a long-poll in ms (0 without it), at most `max`. */
function waitOf(value: string | undefined, max: number): number {
  if (value === undefined || value === "") return 0;
  let ms: number;
  try {
    ms = parseDuration("wait", /^\d+$/.test(value) ? `${value}s` : value);
  } catch {
    throw new HttpProblem(
      422,
      "validation-failed",
      `wait ${JSON.stringify(value)}: a duration such as 30s, 2m or 500ms`,
      {
        field: "query.wait",
      },
    );
  }
  if (ms > max) {
    throw new HttpProblem(
      422,
      "validation-failed",
      `wait ${value}: at most ${max / 1000}s (gateway.maxWait)`,
      {
        field: "query.wait",
      },
    );
  }
  return ms;
}

const STATES = new Set<string>(TaskState.options);

/** The filter of `GET /v1/tasks`, each bad value named. */
function listQuery(q: Record<string, string>): TaskListQuery {
  const out: TaskListQuery = {};
  if (q.status !== undefined && q.status !== "") {
    const statuses = q.status.split(",").map((s) => s.trim());
    const bad = statuses.find((s) => !STATES.has(s));
    if (bad !== undefined) {
      throw new HttpProblem(
        422,
        "validation-failed",
        `status ${JSON.stringify(bad)}: one of ${[...STATES].join(", ")}`,
        {
          field: "query.status",
        },
      );
    }
    out.status = statuses as TaskIndexStatus[];
  }
  if (q.session) out.session = q.session;
  if (q.worker) out.worker = q.worker;
  if (q.q) {
    if (q.q.length > 200) {
      throw new HttpProblem(
        422,
        "validation-failed",
        "q: at most 200 characters (the index keeps the first 200 of a prompt)",
        { field: "query.q" },
      );
    }
    out.q = q.q;
  }
  for (const field of ["since", "until"] as const) {
    const value = q[field];
    if (!value) continue;
    if (!Number.isFinite(Date.parse(value))) {
      throw new HttpProblem(422, "validation-failed", `${field} ${JSON.stringify(value)}: an ISO 8601 time`, {
        field: `query.${field}`,
      });
    }
    out[field] = value;
  }
  if (q.limit !== undefined) {
    const limit = Number(q.limit);
    if (!/^\d+$/.test(q.limit) || limit < 1 || limit > 1000) {
      throw new HttpProblem(
        422,
        "validation-failed",
        `limit ${JSON.stringify(q.limit)}: an integer from 1 to 1000`,
        {
          field: "query.limit",
        },
      );
    }
    out.limit = limit;
  }
  if (q.cursor) out.cursor = q.cursor;
  return out;
}
