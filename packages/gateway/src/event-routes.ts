import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import { HttpProblem, notFound, toProblem } from "./problem.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { namespaceOf, taskIDOf } from "./route-context.js";
import type { TaskIndexRecord } from "@station-coding/protocol";
import { WatchedStream } from "./stream-guard.js";
import { taskExists, viewOfRecord } from "./task-view.js";

/** The Node response under a request (served by @hono/node-server), to cut off a stalled client. */
function nodeResponse(env: unknown): { destroy(): void } | undefined {
  return (env as { outgoing?: { destroy(): void } } | undefined)?.outgoing;
}

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
    const release = deps.streams.acquire(c.get("principal").name);
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      const onClosing = () => stop.abort();
      deps.closing.addEventListener("abort", onClosing, { once: true });
      stream.onAbort(() => stop.abort());
      deps.metrics.sseClients.inc({ org });
      const out = new WatchedStream(stream, {
        stallMs: deps.stallMs,
        heartbeatMs: deps.heartbeatMs,
        onStall: () => {
          stop.abort();
          nodeResponse(c.env)?.destroy();
          deps.logger.warn({ taskID, org: ns.org }, "event stream cut off: the client stopped reading");
        },
      });
      try {
        const handle = ns.dispatcher.task(taskID);
        for await (const event of handle.events({ afterSeq, signal: stop.signal })) {
          await out.writeSSE({ id: String(event.seq), event: event.type, data: JSON.stringify(event) });
        }
        if (stop.signal.aborted) return;
        const result = await handle.result({ signal: stop.signal });
        await out.writeSSE({ event: "result", data: JSON.stringify(result) });
      } catch (err) {
        // Handled here, not in streamSSE's onError: after that, hono writes a second error event
        // with the raw message, which the problem document hides on purpose.
        if (deps.closing.aborted || stream.aborted) return;
        const problem = toProblem(err);
        deps.logger.warn({ taskID, org: ns.org, err: problem.message }, "event stream failed");
        await out.writeSSE({ event: "error", data: JSON.stringify(problem.document(c.req.path)) });
      } finally {
        out.stop();
        release();
        deps.closing.removeEventListener("abort", onClosing);
        deps.metrics.sseClients.dec({ org });
      }
    });
  });
}

/**
 * `GET /v1/task-changes`: every change of the namespace's task index from now on, as Server-Sent
 * Events (`event: task`, `data: <task view>`), for live task lists. No replay: a client opens the
 * stream, then lists (`GET /v1/tasks`) once the response's headers arrived, and applies the
 * changes on top. A slow client is never sent a backlog: changes wait coalesced by taskID (the
 * latest view of each task), so what is held per client is bounded by the tasks that changed.
 */
export function registerTaskChangeRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get("/v1/task-changes", async (c) => {
    const { ns, orgQuery } = namespaceOf(c, deps);
    const changes = ns.changes;
    if (!changes) {
      throw new HttpProblem(503, "no-task-index", "this namespace has no task index view to follow");
    }
    const org = ns.org ?? "";
    // Listening before the response starts: a client that lists once the headers arrived misses
    // no change made after its list.
    const pending = new Map<string, TaskIndexRecord>();
    let wake: (() => void) | undefined;
    const listener = (record: TaskIndexRecord) => {
      pending.delete(record.taskID);
      pending.set(record.taskID, record);
      wake?.();
    };
    const release = deps.streams.acquire(c.get("principal").name);
    changes.add(listener);
    c.header("X-Accel-Buffering", "no");
    return streamSSE(c, async (stream) => {
      const stop = new AbortController();
      const onClosing = () => stop.abort();
      deps.closing.addEventListener("abort", onClosing, { once: true });
      stream.onAbort(() => stop.abort());
      stop.signal.addEventListener("abort", () => wake?.(), { once: true });
      deps.metrics.sseClients.inc({ org });
      const out = new WatchedStream(stream, {
        stallMs: deps.stallMs,
        heartbeatMs: deps.heartbeatMs,
        onStall: () => {
          stop.abort();
          nodeResponse(c.env)?.destroy();
          deps.logger.warn({ org: ns.org }, "task change stream cut off: the client stopped reading");
        },
      });
      try {
        await out.write(() => stream.write(": following\n\n"));
        while (!stop.signal.aborted) {
          if (pending.size === 0) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
            continue;
          }
          const batch = [...pending.values()];
          pending.clear();
          for (const record of batch) {
            await out.writeSSE({ event: "task", data: JSON.stringify(viewOfRecord(record, orgQuery)) });
          }
        }
      } finally {
        out.stop();
        release();
        changes.delete(listener);
        deps.closing.removeEventListener("abort", onClosing);
        deps.metrics.sseClients.dec({ org });
      }
    });
  });
}
