import { jetstream } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { propagation, trace } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  script,
  startEnv,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

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
    expect(span.spanContext().traceId).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(span.parentSpanContext?.spanId).toBe("b7ad6b7169203331");
    expect(span.attributes).toMatchObject({
      "opencode.session_id": result.session.opencodeID,
      "opencode.workspace": "traced",
      "opencode.model": "scripted",
      "opencode.provider": "test",
      "opencode.cost": 0,
      "opencode.tokens.input": 10,
      "opencode.tokens.output": 5,
      "opencode.tool_calls": 1,
    });
    expect(span.events.map((e) => e.name)).toContain("tool_start");
  });
});

describe("logs and secrets", () => {
  it("tags every task log line with taskID and session, and never writes a token anywhere", async () => {
    const token = "ghp_s3cr3tT0kenValue1234567890abcdef";
    const workerKey = "sk-worker-key-0123456789abcdef";
    await startWorker(env, undefined, { secrets: [workerKey], maxAttempts: 1 });
    // A task whose clone fails: the token must not leak through git's error text.
    await publishTask(env, {
      taskID: "secretive",
      session: { name: "sec" },
      prompt: "clone me",
      workspace: { name: "sec", git: { url: "https://127.0.0.1:1/private/repo.git", token } },
    });
    // A task whose agent echoes secrets: they are scrubbed from events and the result.
    await publishTask(env, {
      taskID: "echo",
      session: { name: "echo" },
      prompt: script({ text: `the token is ${token} and the key is ${workerKey}` }),
    });
    const failed = await waitResult(env, "secretive");
    const echoed = await waitResult(env, "echo");
    expect(failed.status).toBe("error");
    expect(echoed.status).toBe("completed");
    expect(echoed.result).toContain("[REDACTED]");
    const events = [...(await eventsOf(env, "secretive")), ...(await eventsOf(env, "echo"))];
    const everything = [JSON.stringify([failed, echoed]), JSON.stringify(events), env.logs.join("\n")].join(
      "\n",
    );
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(workerKey);

    // "task finished" is logged right after the result is published: wait for both lines.
    const finished = await waitFor(() => {
      const lines = env.logs
        .flatMap((chunk) => chunk.split("\n"))
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((l) => l.msg === "task finished");
      return lines.length === 2 ? lines : undefined;
    });
    expect(finished.map((l) => [l.taskID, l.session]).sort()).toEqual([
      ["echo", "echo"],
      ["secretive", "sec"],
    ]);
    expect(env.logs.join("\n")).not.toContain(token);
    expect(env.logs.join("\n")).not.toContain(workerKey);
  });
});
