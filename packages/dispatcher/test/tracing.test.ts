import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { DISPATCH_SPAN } from "@station-coding/dispatcher";
import { script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv, until } from "./support/dispatcher-env.js";

// This file runs in its own process (vitest forks), so the global registration stays here.
const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const contextManager = new AsyncLocalStorageContextManager();

beforeAll(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(async () => {
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});

let env: DispatcherEnv;
beforeEach(async () => {
  exporter.reset();
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

describe("tracing", () => {
  it("makes the worker's task span a child of the dispatcher's span, with the task's events on it", async () => {
    await startWorker(env);
    const dispatcher = await env.connect();
    const handle = await dispatcher.submit({
      taskID: "traced",
      prompt: script({ tool: { name: "bash" } }, { text: "ok" }),
    });
    expect((await handle.result()).status).toBe("completed");

    const { dispatch, task } = await until(() => {
      const finished = exporter.getFinishedSpans();
      const dispatch = finished.find((s) => s.name === DISPATCH_SPAN);
      const task = finished.find((s) => s.name === "opencode.task");
      return dispatch && task ? { dispatch, task } : undefined;
    }, "both spans to end");
    expect(task.spanContext().traceId).toBe(dispatch.spanContext().traceId);
    expect(task.parentSpanContext?.spanId).toBe(dispatch.spanContext().spanId);
    expect(dispatch.attributes).toMatchObject({
      "station.task_id": "traced",
      "station.status": "completed",
      "messaging.destination.name": "station.coding.task",
    });
    expect(task.attributes["station.task_id"]).toBe("traced");
    expect(dispatch.events.map((e) => e.name)).toEqual(
      expect.arrayContaining(["task_started", "prompt_sent", "tool_start", "tool_end"]),
    );
  });

  it("nests the dispatch span under the caller's active span", async () => {
    const dispatcher = await env.connect();
    const tracer = trace.getTracer("test");
    const parent = tracer.startSpan("caller");
    await context.with(trace.setSpan(context.active(), parent), () =>
      dispatcher.submit({ taskID: "nested", prompt: "x" }),
    );
    parent.end();
    await dispatcher.close();
    const dispatch = exporter.getFinishedSpans().find((s) => s.name === DISPATCH_SPAN);
    expect(dispatch?.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    expect(dispatch?.attributes["station.detached"]).toBe(true);
  });
});
