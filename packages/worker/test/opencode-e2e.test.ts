import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createFileScenario } from "@station-coding/testkit";
import type { Env } from "./support/harness.js";
import { eventsOf, publishTask, startEnv, startWorker, waitResult } from "./support/harness.js";
import { startOpenCode } from "./support/opencode-env.js";

let env: Env;
let oc: Awaited<ReturnType<typeof startOpenCode>>;

beforeAll(async () => {
  env = await startEnv();
  oc = await startOpenCode([createFileScenario({ match: "create hello" })]);
  await startWorker(env, oc.driver, { ackWait: 5_000 });
}, 60_000);
afterAll(async () => {
  await env?.close();
  await oc?.close();
});

describe("OpenCode end to end", () => {
  it("creates a file; tokens and cost are summed over every step", async () => {
    await publishTask(env, { taskID: "oc-create", prompt: "please create hello" });
    const result = await waitResult(env, "oc-create", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const file = join(result.workspace.path, "hello.txt");
    expect(existsSync(file)).toBe(true);
    expect(readFileSync(file, "utf8")).toBe("hello\n");
    expect(result.metrics.toolCalls).toBe(1);
    expect(result.metrics.promptTokens).toBe(270);
    expect(result.metrics.completionTokens).toBe(40);
    const events = await eventsOf(env, "oc-create");
    console.log(events.map((e) => `${e.seq} ${e.type} ${e.content ?? e.tool?.name ?? ""}`).join("\n"));
  }, 90_000);
});
