import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { HttpProblem, notFound, toProblem } from "./problem.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { namespaceOf, taskIDOf } from "./route-context.js";
import { taskExists } from "./task-view.js";

/** The seq to resume after: `Last-Event-ID` (what a reconnecting EventSource sends), else `?after=`. */
function resumeAfter(lastEventID: string | undefined, after: string | undefined): number {
  const [value, field] =
    lastEventID !== undefined ? [lastEventID, "header.Last-Event-ID"] : [after, "query.after"];
  if (value === undefined || value === "") return 0;
  if (!/^\d{1,15}$/.test(value.trim())) {
    throw new HttpProblem(
      422,
      "validation-failed",
      `${field} ${JSON.stringify(value.slice(0, 40))}: must be an event seq (a non-negative integer)`,
      {
        field,
      },
    );
  }
  return Number(value.trim());
}

/**
 * `GET /v1/tasks/{taskID}/events`: the task's events as Server-Sent Events, replayed from the
 * events stream (after the resume point) and followed live through the dispatcher's ordered
 * follower, so that a reconnect with `Last-Event-ID` misses nothing and repeats nothing. The
 * result comes last as `event: result` without an id (a reconnect after it replays nothing
 * twice: the events before it keep their ids); then the response ends.
 */
export function registerEventRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get("/v1/tasks/:taskID/events", async (c) => {
    const taskID = taskIDOf(c);
    const { ns } = namespaceOf(c, deps);
    const afterSeq = resumeAfter(c.req.header("last-event-id"), c.req.query("after"));
    if (!(await taskExists(ns, taskID))) throw notFound(`task ${taskID}`);
    const org = ns.org ?? "";
    c.header("X-Accel-Buffering", "no");
    return streamSSE(
      c,
      async (stream) => {
        const stop = new AbortController();
        const onClosing = () => stop.abort();
        deps.closing.addEventListener("abort", onClosing, { once: true });
        stream.onAbort(() => stop.abort());
        deps.metrics.sseClients.inc({ org });
        const heartbeat = setInterval(() => {
          stream.write(": heartbeat\n\n").catch(() => stop.abort());
        }, deps.heartbeatMs);
        try {
          const handle = ns.dispatcher.task(taskID);
          for await (const event of handle.events({ afterSeq, signal: stop.signal })) {
            await stream.writeSSE({ id: String(event.seq), event: event.type, data: JSON.stringify(event) });
          }
          if (stop.signal.aborted) return;
          const result = await handle.result({ signal: stop.signal });
          await stream.writeSSE({ event: "result", data: JSON.stringify(result) });
        } finally {
          clearInterval(heartbeat);
          deps.closing.removeEventListener("abort", onClosing);
          deps.metrics.sseClients.dec({ org });
        }
      },
      async (err, stream) => {
        if (deps.closing.aborted || stream.aborted) return;
        const problem = toProblem(err);
        deps.logger.warn({ taskID, org: ns.org, err: problem.message }, "event stream failed");
        await stream.writeSSE({ event: "error", data: JSON.stringify(problem.document(c.req.path)) });
      },
    );
  });
}
