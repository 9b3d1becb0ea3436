import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { waitFor } from "@station-coding/testkit";
import type { Env } from "./support/harness.js";
import { ScriptedDriver, eventsOf, publishTask, queuedTasks, script, startEnv, startWorker, waitResult } from "./support/harness.js";

let env: Env;
beforeEach(async () => {
  env = await startEnv();
});
afterEach(async () => {
  await env.close();
});

describe("worker runtime", () => {
  it("runs a minimal task and publishes live events and one result", async () => {
    await startWorker(env);
    await publishTask(env, { taskID: "t1", prompt: script({ text: "hello " }, { tool: { name: "bash" } }, { text: "world" }) });
    const result = await waitResult(env, "t1");
    expect(result.status).toBe("completed");
    expect(result.result).toBe("hello world");
    expect(result.session.name).toBe("t1");
    expect(result.session.messageCount).toBe(1);
    expect(result.metrics.toolCalls).toBe(1);
    expect(result.metrics.promptTokens).toBe(10);
    const events = await eventsOf(env, "t1");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.map((e) => e.type)).toEqual([
      "task_started",
      "workspace_created",
      "session_created",
      "prompt_sent",
      "text",
      "tool_start",
      "tool_end",
      "text",
    ]);
    expect(result.metrics.streamEvents).toBe(events.length);
    await waitFor(async () => (await queuedTasks(env)) === 0, { message: "task acked" });
  });
});
