import type { TaskIndexRecord, TaskResult } from "@station-coding/protocol";
import type { z } from "@hono/zod-openapi";
import type { GatewayNamespace } from "./namespaces.js";
import type { TaskLinks, TaskView } from "./schemas.js";

type View = z.infer<typeof TaskView>;
type Links = z.infer<typeof TaskLinks>;

/** The links of a task, with the org selector of the request kept. */
export function taskLinks(taskID: string, orgQuery: string): Links {
  const base = `/v1/tasks/${encodeURIComponent(taskID)}`;
  return {
    self: `${base}${orgQuery}`,
    events: `${base}/events${orgQuery}`,
    result: `${base}/result${orgQuery}`,
    cancel: `${base}/cancel${orgQuery}`,
  };
}

function defined<T extends object>(fields: T): T {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as T;
}

/** A task view from its index record. */
export function viewOfRecord(record: TaskIndexRecord, orgQuery: string): View {
  return defined({
    taskID: record.taskID,
    status: record.status,
    op: record.op,
    worker: record.worker,
    attempts: record.attempts,
    submittedAt: record.submittedAt,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    prompt: record.prompt,
    session: record.session,
    metrics: record.metrics,
    errorCode: record.errorCode,
    error: record.error,
    links: taskLinks(record.taskID, orgQuery),
  });
}

function metricsOf(result: TaskResult): View["metrics"] {
  const m = result.metrics;
  return defined({
    duration: m.duration,
    tokens: m.tokens ? m.tokens.input + m.tokens.output : undefined,
    inputTokens: m.tokens?.input,
    outputTokens: m.tokens?.output,
    cost: m.cost,
    toolCalls: m.toolCalls,
    model: m.model,
    provider: m.provider,
  });
}

/**
 * Where a task stands: its index record, completed by its result and lease (a task the index has
 * not seen, e.g. published by an older client, is found by its lease or result). Undefined when
 * nothing of the task exists in the namespace.
 */
export async function describe(
  ns: GatewayNamespace,
  taskID: string,
  orgQuery: string,
): Promise<View | undefined> {
  const record = ns.index?.get(taskID) ?? (await ns.records?.get(taskID))?.value;
  const recordFinal = record !== undefined && record.status !== "queued" && record.status !== "running";
  const state = await ns.dispatcher.task(taskID).state();
  const { result, lease } = state;
  if (!record && !result && !lease) return undefined;
  const base: View = record
    ? viewOfRecord(record, orgQuery)
    : { taskID, status: "queued", links: taskLinks(taskID, orgQuery) };
  if (result) {
    return defined({
      ...base,
      status: result.status,
      worker: base.worker ?? result.workerID,
      attempts: base.attempts ?? result.metrics.attempts,
      session: base.session ?? result.session.name,
      finishedAt: base.finishedAt ?? result.completedAt,
      metrics: base.metrics ?? metricsOf(result),
      errorCode: result.status === "completed" ? undefined : result.errorCode,
      error: result.status === "completed" ? undefined : result.error,
      result,
    });
  }
  if (recordFinal || !lease) return base;
  const running = lease.state === "running" || lease.state === "publishing";
  return defined({
    ...base,
    status: running ? "running" : base.status,
    worker: lease.workerID ?? base.worker,
    attempts: lease.attempts,
    startedAt: base.startedAt ?? lease.startedAt,
  });
}

/** Whether a task exists in the namespace: its index record, else its result or lease. */
export async function taskExists(ns: GatewayNamespace, taskID: string): Promise<boolean> {
  if (ns.index?.get(taskID) ?? (await ns.records?.get(taskID))) return true;
  const { result, lease } = await ns.dispatcher.task(taskID).state();
  return result !== undefined || lease !== undefined;
}
