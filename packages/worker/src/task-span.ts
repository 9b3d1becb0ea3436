import type { JsMsg } from "@nats-io/jetstream";
import type { Span, Tracer } from "@opentelemetry/api";
import { ROOT_CONTEXT, propagation } from "@opentelemetry/api";
import type { ResolvedTask, TaskResult } from "@station-coding/protocol";

const headerGetter = {
  get(carrier: JsMsg["headers"], key: string): string | undefined {
    return carrier?.get(key) || undefined;
  },
  keys(carrier: JsMsg["headers"]): string[] {
    return carrier ? [...carrier.keys()] : [];
  },
};

/**
 * The `opencode.task` span of one run of a task: a child of the dispatcher's span when the task
 * message carries its trace context (W3C headers), else a root span.
 */
export function startTaskSpan(tracer: Tracer, task: ResolvedTask, headers: JsMsg["headers"]): Span {
  const parent = propagation.extract(ROOT_CONTEXT, headers, headerGetter);
  const span = tracer.startSpan("opencode.task", { attributes: { "station.task_id": task.taskID } }, parent);
  span.setAttribute("opencode.workspace", task.workspace.name);
  if (task.model) {
    span.setAttribute("opencode.model", task.model.modelID);
    span.setAttribute("opencode.provider", task.model.providerID);
  }
  return span;
}

/** The result's session, model, cost, tokens, tool calls and status as span attributes. */
export function setSpanMetrics(span: Span, result: TaskResult): void {
  const m = result.metrics;
  span.setAttribute("opencode.session_id", result.session.opencodeID);
  if (m.model) span.setAttribute("opencode.model", m.model);
  if (m.provider) span.setAttribute("opencode.provider", m.provider);
  if (m.cost !== undefined) span.setAttribute("opencode.cost", m.cost);
  if (m.tokens) {
    span.setAttribute("opencode.tokens.input", m.tokens.input);
    span.setAttribute("opencode.tokens.output", m.tokens.output);
  }
  span.setAttribute("opencode.tool_calls", m.toolCalls);
  span.setAttribute("station.status", result.status);
}
