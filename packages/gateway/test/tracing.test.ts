import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { context, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { DISPATCH_SPAN } from "@station-coding/dispatcher";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { startGatewayEnv } from "./support/gateway-env.js";

// This file runs in its own process (vitest forks), so the global registration stays here.
const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });

let env: GatewayEnv;
beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  env = await startGatewayEnv();
  await startWorker(env, new ScriptedDriver());
});
afterAll(async () => {
  await env?.close();
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});

describe("tracing through the gateway", () => {
  it("continues the caller's traceparent: caller -> HTTP server span -> dispatch -> the worker's task span", async () => {
    const traceID = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const response = await env.api("/v1/tasks", {
      method: "POST",
      json: { taskID: "traced-http", prompt: script({ tool: { name: "bash" } }, { text: "ok" }) },
      headers: { traceparent: `00-${traceID}-${callerSpan}-01` },
    });
    expect(response.status).toBe(202);
    expect((await env.api("/v1/tasks/traced-http/result?wait=30s")).status).toBe(200);
    const spans = await waitFor(
      () => {
        const finished = exporter.getFinishedSpans();
        const server = finished.find((s) => s.name === "POST /v1/tasks");
        const dispatch = finished.find((s) => s.name === DISPATCH_SPAN);
        const task = finished.find((s) => s.name === "opencode.task");
        return server && dispatch && task ? { server, dispatch, task } : undefined;
      },
      { message: "the server, dispatch and task spans" },
    );
    for (const span of Object.values(spans)) expect(span.spanContext().traceId).toBe(traceID);
    expect(spans.server.parentSpanContext?.spanId).toBe(callerSpan);
    expect(spans.dispatch.parentSpanContext?.spanId).toBe(spans.server.spanContext().spanId);
    expect(spans.task.parentSpanContext?.spanId).toBe(spans.dispatch.spanContext().spanId);
    expect(spans.server.attributes).toMatchObject({
      "station.task_id": "traced-http",
      "station.gateway.token": "ci",
    });
  });
});
