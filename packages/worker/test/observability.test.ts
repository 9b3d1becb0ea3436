import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "./support/harness.js";
import { eventsOf, publishTask, script, startEnv, startWorker, waitResult } from "./support/harness.js";

const exporter = new InMemorySpanExporter();
beforeAll(() => {
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  );
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  trace.disable();
  propagation.disable();
});

let env: Env;
beforeEach(async () => {
  env = await startEnv();
  exporter.reset();
});
afterEach(async () => {
  await env.close();
});

describe("telemetry", () => {
  it("continues the trace from the task's traceparent header in an opencode.task span with the task's figures", async () => {
    await startWorker(env);
    const h = headers();
    h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    await jetstream(env.nc).publish(
      env.names.taskSubject,
      JSON.stringify({
        taskID: "traced",
        prompt: script({ tool: { name: "bash" } }, { text: "ok" }),
        model: { providerID: "test", modelID: "scripted" },
      }),
      { headers: h },
    );
    const result = await waitResult(env, "traced");
    const span = await waitFor(() => exporter.getFinishedSpans().find((s) => s.name === "opencode.task"), {
      message: "opencode.task span",
    });
    expect(span!.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(span!.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(span!.attributes).toMatchObject({
      "opencode.session_id": result.session.opencodeID,
      "opencode.workspace": "traced",
      "opencode.model": "scripted",
      "opencode.provider": "test",
      "opencode.cost": 0,
      "opencode.tokens.input": 10,
      "opencode.tokens.output": 5,
      "opencode.tool_calls": 1,
    });
    expect(span!.events.map((e) => e.name)).toContain("tool_start");
  });
});

describe("logs and secrets", () => {
  it("tags every task log line with taskID and session, and never writes a task's token anywhere", async () => {
    const token = "ghp_s3cr3tT0kenValue1234567890abcdef";
    await startWorker(env, undefined, { secrets: ["sk-worker-key-0123456789abcdef"] });
    await publishTask(env, {
      taskID: "secretive",
      session: { name: "sec" },
      prompt: script({ text: `the token is ${token} and the key is sk-worker-key-0123456789abcdef` }),
      workspace: { name: "sec", git: { url: "https://example.invalid/repo.git", token } },
    });
    // The scripted driver ignores git, so the run completes; the text echoes the secrets.
    const result = await waitResult(env, "secretive");
    const events = await eventsOf(env, "secretive");
    const everything = [JSON.stringify(result), JSON.stringify(events), env.logs.join("\n")].join("\n");
    expect(everything).not.toContain(token);
    expect(everything).not.toContain("sk-worker-key-0123456789abcdef");
    expect(result.result).toContain("[REDACTED]");

    const lines = env.logs
      .flatMap((chunk) => chunk.split("\n"))
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const finished = lines.find((l) => l.msg === "task finished");
    expect(finished).toMatchObject({ taskID: "secretive", session: "sec" });
  });
});
