import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import { z } from "@hono/zod-openapi";
import {
  ArtifactList,
  BulkReplayRequest,
  BulkReplayResult,
  CostTable,
  Me,
  Problem,
  RecordList,
  ReplayRequest,
  Stats,
  SubmitAccepted,
  TaskList,
  TaskState,
  TaskView,
  wireComponents,
} from "./schemas.js";

/** The version of the HTTP API (its paths start with /v1). */
export const API_VERSION = "1.0.0";

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({
  "application/json": { schema: schema as z.ZodType },
});
const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: Problem } },
});
const errors = {
  401: problem("No bearer token, or not one of the gateway's (with WWW-Authenticate: Bearer)"),
  429: problem("Over the token's rate limit (with Retry-After)"),
};
const writeErrors = { ...errors, 403: problem("The token is a viewer and may not write") };
const TaskIDParam = z.object({ taskID: z.string().openapi({ description: "The task's id" }) });
const OrgQuery = z.object({
  org: z.string().optional().openapi({
    description: "The org (admin tokens of a gateway serving several orgs); also the Station-Org header",
  }),
});

/** Every route of the HTTP API, for the generated OpenAPI 3.1 document. */
function routes(): RouteConfig[] {
  return [
    {
      method: "post",
      path: "/v1/tasks",
      tags: ["tasks"],
      summary: "Submit a task",
      description:
        "Publishes a task in the wire format. The Idempotency-Key header becomes the taskID when the body has none; " +
        "the same key again answers 200 with the same task and never runs it twice.",
      request: {
        query: OrgQuery,
        headers: z.object({ "idempotency-key": z.string().optional() }),
        body: { required: true, content: json(ref("TaskSubmission")) },
      },
      responses: {
        202: { description: "Stored in JetStream; queued", content: json(SubmitAccepted) },
        200: {
          description: "The task already exists (a repeat); nothing new runs",
          content: json(SubmitAccepted),
        },
        400: problem("The body is not JSON"),
        413: problem("The body is over gateway.maxBodyBytes"),
        422: problem("The body is not a valid task (the field is named)"),
        ...writeErrors,
      },
    },
    {
      method: "get",
      path: "/v1/tasks",
      tags: ["tasks"],
      summary: "List tasks, newest first",
      request: {
        query: OrgQuery.extend({
          status: z
            .string()
            .optional()
            .openapi({ description: `Comma-separated: ${TaskState.options.join(", ")}` }),
          session: z.string().optional(),
          worker: z.string().optional(),
          q: z.string().optional().openapi({
            description: "Text the prompt's first 200 characters contain, ignoring case",
          }),
          since: z.string().optional().openapi({ description: "ISO 8601 time: submitted at or after it" }),
          until: z.string().optional().openapi({ description: "ISO 8601 time: submitted before it" }),
          limit: z.string().optional().openapi({ description: "1 to 1000, default 50" }),
          cursor: z.string().optional().openapi({ description: "`next` of the previous page" }),
        }),
      },
      responses: {
        200: { description: "A page of tasks", content: json(TaskList) },
        422: problem("A bad filter"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/tasks/{taskID}",
      tags: ["tasks"],
      summary: "A task's status",
      request: { params: TaskIDParam, query: OrgQuery },
      responses: {
        200: { description: "The task", content: json(TaskView) },
        404: problem("No such task"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/tasks/{taskID}/events",
      tags: ["tasks"],
      summary: "Follow a task's events (Server-Sent Events)",
      description:
        "Each event has `id: <seq>`, `event: <type>` and `data: <event JSON>`. Replays from seq 1, or after " +
        "Last-Event-ID / ?after=, follows live, sends the result as `event: result` (no id) and ends. " +
        "Comment lines are heartbeats.",
      request: {
        params: TaskIDParam,
        query: OrgQuery.extend({
          after: z.string().optional().openapi({ description: "Resume after this seq" }),
        }),
        headers: z.object({ "last-event-id": z.string().optional() }),
      },
      responses: {
        200: {
          description: "An event stream of StreamEvent, then the TaskResult",
          content: { "text/event-stream": { schema: z.string() } },
        },
        404: problem("No such task"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/tasks/{taskID}/result",
      tags: ["tasks"],
      summary: "A task's result, waiting up to ?wait= for it",
      request: {
        params: TaskIDParam,
        query: OrgQuery.extend({
          wait: z.string().optional().openapi({ description: "e.g. 30s; default 0" }),
        }),
      },
      responses: {
        200: { description: "The result (as on the result subject)", content: json(ref("TaskResult")) },
        202: { description: "Not finished when the wait ended: the task's status", content: json(TaskView) },
        404: problem("No such task"),
        ...errors,
      },
    },
    {
      method: "post",
      path: "/v1/tasks/{taskID}/cancel",
      tags: ["tasks"],
      summary: "Cancel a task",
      request: {
        params: TaskIDParam,
        query: OrgQuery,
        body: { required: false, content: json(z.object({ reason: z.string().max(1000).optional() })) },
      },
      responses: {
        202: {
          description: "The cancel request is stored",
          content: json(z.object({ taskID: z.string(), status: z.literal("cancelling") })),
        },
        404: problem("No such task"),
        ...writeErrors,
      },
    },
    {
      method: "get",
      path: "/v1/tasks/{taskID}/artifacts",
      tags: ["artifacts"],
      summary: "A task's objects (inputs, patch, artifacts)",
      request: { params: TaskIDParam, query: OrgQuery },
      responses: {
        200: { description: "The objects", content: json(ArtifactList) },
        404: problem("No such task"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/artifacts/{key}",
      tags: ["artifacts"],
      summary: "Download an object; the key keeps its slashes (output/<taskID>/changes.patch)",
      request: { params: z.object({ key: z.string() }), query: OrgQuery },
      responses: {
        200: {
          description: "The object's bytes",
          content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
        },
        404: problem("No such object"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/task-changes",
      tags: ["tasks"],
      summary: "Changes of the task index as Server-Sent Events, for live task lists",
      description:
        "From now on (no replay): each change as `event: task` with the task view as `data`, coalesced per task " +
        "for a slow client. Open it, then list GET /v1/tasks and apply the changes on top.",
      request: { query: OrgQuery },
      responses: {
        200: { description: "An event stream", content: { "text/event-stream": { schema: z.string() } } },
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/me",
      tags: ["namespace"],
      summary: "Who the bearer token is: its name, role, org and the orgs it may name",
      responses: { 200: { description: "The token's principal", content: json(Me) }, ...errors },
    },
    {
      method: "get",
      path: "/v1/sessions",
      tags: ["namespace"],
      summary: "Station coding sessions",
      request: { query: OrgQuery },
      responses: { 200: { description: "Sessions", content: json(RecordList("SessionState")) }, ...errors },
    },
    {
      method: "get",
      path: "/v1/workers",
      tags: ["namespace"],
      summary: "Workers (alive or dead)",
      request: { query: OrgQuery },
      responses: { 200: { description: "Workers", content: json(RecordList("WorkerPresence")) }, ...errors },
    },
    {
      method: "get",
      path: "/v1/status",
      tags: ["namespace"],
      summary: "Queue depth, consumer, workers and dead letters",
      request: { query: OrgQuery },
      responses: {
        200: { description: "Status", content: json(z.record(z.string(), z.unknown())) },
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/dead-letters",
      tags: ["dead letters"],
      summary: "Tasks that will not be retried",
      request: { query: OrgQuery },
      responses: { 200: { description: "Dead letters", content: json(RecordList("DeadLetter")) }, ...errors },
    },
    {
      method: "post",
      path: "/v1/dead-letters/{taskID}/replay",
      tags: ["dead letters"],
      summary: "Run a dead task again",
      request: {
        params: TaskIDParam,
        query: OrgQuery,
        body: { required: false, content: json(ReplayRequest) },
      },
      responses: {
        202: { description: "Republished", content: json(SubmitAccepted) },
        404: problem("No such dead letter"),
        422: problem("The replay was refused (e.g. its git token must be given again)"),
        ...writeErrors,
      },
    },
    {
      method: "post",
      path: "/v1/dead-letters/replay",
      tags: ["dead letters"],
      summary: "Run dead tasks again, by filter",
      request: { query: OrgQuery, body: { required: true, content: json(BulkReplayRequest) } },
      responses: {
        200: { description: "What was replayed", content: json(BulkReplayResult) },
        ...writeErrors,
      },
    },
    {
      method: "get",
      path: "/v1/stats",
      tags: ["namespace"],
      summary: "Tasks finished per minute and their cost per hour, per org",
      description:
        "Read from the task index: tasks that reached a final status in the last `hours`, bucketed by their " +
        "finishedAt. An admin of all orgs gets one entry per org unless it names one with ?org= or Station-Org.",
      request: {
        query: OrgQuery.extend({
          hours: z.string().optional().openapi({ description: "1 to 168, default 24" }),
        }),
      },
      responses: {
        200: { description: "Buckets and totals", content: json(Stats) },
        422: problem("A bad hours"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/v1/costs",
      tags: ["namespace"],
      summary: "Finished tasks, tokens and cost by org and model",
      description:
        "Everything the task index keeps (as long as results are kept), or since ?since=. An admin of all " +
        "orgs gets every org unless it names one.",
      request: {
        query: OrgQuery.extend({
          since: z.string().optional().openapi({ description: "ISO 8601 time: tasks finished since" }),
        }),
      },
      responses: {
        200: { description: "One line per org, provider and model", content: json(CostTable) },
        422: problem("A bad since"),
        ...errors,
      },
    },
    {
      method: "get",
      path: "/healthz",
      tags: ["operations"],
      summary: "The process is up",
      security: [],
      responses: { 200: { description: "Up", content: json(z.object({ status: z.literal("ok") })) } },
    },
    {
      method: "get",
      path: "/readyz",
      tags: ["operations"],
      summary: "NATS is connected and the topology is there, for every org served",
      security: [],
      responses: {
        200: {
          description: "Ready",
          content: json(z.object({ status: z.literal("ready"), orgs: z.array(z.string()) })),
        },
        503: problem("Not ready (says which org and why)"),
      },
    },
    {
      method: "get",
      path: "/metrics",
      tags: ["operations"],
      summary: "Prometheus metrics (a token only when gateway.metricsToken is set)",
      security: [],
      responses: {
        200: { description: "Prometheus text format", content: { "text/plain": { schema: z.string() } } },
      },
    },
  ];
}

/** Registers every route and component, and returns the function that renders the document. */
export function registerOpenApi(app: OpenAPIHono<never>): () => Record<string, unknown> {
  const registry = app.openAPIRegistry;
  registry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  for (const route of routes()) registry.registerPath(route);
  const wire = wireComponents();
  let document: Record<string, unknown> | undefined;
  return () => {
    if (document) return document;
    const generated = app.getOpenAPI31Document({
      openapi: "3.1.0",
      info: {
        title: "station-coding HTTP API",
        version: API_VERSION,
        description:
          "Submit coding tasks, follow their events live and resumably (Server-Sent Events), read results, " +
          "artifacts, sessions, workers and dead letters. Errors are RFC 9457 application/problem+json.",
      },
      security: [{ bearer: [] }],
    }) as unknown as Record<string, unknown> & { components?: { schemas?: Record<string, unknown> } };
    const components = generated.components ?? {};
    document = {
      ...generated,
      components: { ...components, schemas: { ...wire, ...(components.schemas ?? {}) } },
    };
    return document;
  };
}
