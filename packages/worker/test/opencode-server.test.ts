import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { trace } from "@opentelemetry/api";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ScriptedModelServer, createFileScenario, tempDir, waitFor } from "@station-coding/testkit";
import { OpenCodeDriver, OpenCodeServer } from "@station-coding/worker/internal";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  fakeProviderConfig,
  publishTask,
  startEnv,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

const exporter = new InMemorySpanExporter();
let model: ScriptedModelServer;
let env: Env;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  trace.setGlobalTracerProvider(
    new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }),
  );
  model = await ScriptedModelServer.start({
    scenarios: [
      createFileScenario({ match: "create hello" }),
      {
        name: "pause",
        match: "pause then answer",
        steps: [{ delayMs: 2_500, text: "answered after the pause" }],
      },
    ],
  });
});
afterAll(async () => {
  trace.disable();
  await model.stop();
});
beforeEach(async () => {
  env = await startEnv();
  exporter.reset();
});
afterEach(async () => {
  await env.close();
  for (const close of closers.splice(0)) await close();
});

describe("managed and external OpenCode", () => {
  it("merges an --opencode-config file over the defaults and records a span per tool call", async () => {
    const dir = await tempDir("oc-config");
    const file = join(dir, "opencode.json");
    await writeFile(file, JSON.stringify(fakeProviderConfig(model.url)));
    const driver = await OpenCodeDriver.start({
      server: { configFile: file },
      workspaceRoot: env.workspaceDir,
    });
    closers.push(() => driver.close());
    await startWorker(env, driver);
    await publishTask(env, { taskID: "cfg", prompt: "create hello here" });
    expect((await waitResult(env, "cfg", 60_000)).status).toBe("completed");
    const span = await waitFor(() =>
      exporter.getFinishedSpans().find((s) => s.name === "opencode.tool.write"),
    );
    // The task span ends just after the result is published: the result may be seen first.
    const task = await waitFor(() => exporter.getFinishedSpans().find((s) => s.name === "opencode.task"), {
      message: "the opencode.task span to end",
    });
    expect(span.attributes["opencode.tool.status"]).toBe("completed");
    expect(span.endTime[0] * 1e3 + span.endTime[1] / 1e6).toBeGreaterThanOrEqual(
      span.startTime[0] * 1e3 + span.startTime[1] / 1e6,
    );
    expect(task.attributes["station.task_id"]).toBe("cfg");
  }, 90_000);

  it("rejects an unreadable or invalid opencode config with a message naming the file", async () => {
    await expect(
      OpenCodeDriver.start({ server: { configFile: "/nonexistent/opencode.json" } }),
    ).rejects.toThrow("opencode config file /nonexistent/opencode.json: cannot be read");
    const dir = await tempDir("oc-bad");
    await writeFile(join(dir, "bad.json"), "{ nope");
    await expect(OpenCodeDriver.start({ server: { configFile: join(dir, "bad.json") } })).rejects.toThrow(
      /bad\.json: not valid JSON/,
    );
  });

  it("refuses an external opencode serve while the sandbox is on: it cannot confine it", async () => {
    await expect(
      OpenCodeDriver.start({ url: "http://127.0.0.1:9", workspaceRoot: env.workspaceDir }),
    ).rejects.toThrow(
      /opencode url http:\/\/127\.0\.0\.1:9: the sandbox confines only the opencode serve the worker starts/,
    );
  });

  // An external server is unconfined by definition: this test is about sandbox: off.
  it("uses an existing opencode serve given by URL (sandbox off), and says so in the result", async () => {
    const password = "external-password-1234";
    const external = await OpenCodeServer.start({
      config: fakeProviderConfig(model.url),
      password,
      logger: pino({ level: "silent" }),
    });
    closers.push(() => external.stop());
    const driver = await OpenCodeDriver.start({ url: external.url, password, sandbox: { mode: "off" } });
    closers.push(() => driver.close());
    expect(driver.managedServer).toBeUndefined();
    await startWorker(env, driver);
    await publishTask(env, { taskID: "ext", prompt: "create hello again" });
    const result = await waitResult(env, "ext", 60_000);
    expect(result.status).toBe("completed");
    expect(result.sandbox).toBe("off");
    expect(result.metrics.toolCalls).toBe(1);
  }, 90_000);

  it("restarts a managed OpenCode that died; the task in flight fails retryably and is run again", async () => {
    const driver = await OpenCodeDriver.start({
      server: { config: fakeProviderConfig(model.url) },
      workspaceRoot: env.workspaceDir,
    });
    closers.push(() => driver.close());
    await startWorker(env, driver, { retryDelay: 100 });
    await publishTask(env, { taskID: "phoenix", prompt: "pause then answer" });
    await waitFor(() => model.scenarioCalls.some((c) => c.scenario === "pause" && c.outcome === undefined), {
      timeout: 30_000,
      message: "model call in progress",
    });
    const firstPid = driver.managedServer?.pid;
    process.kill(firstPid!, "SIGKILL");
    const result = await waitResult(env, "phoenix", 90_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    expect(result.metrics.attempts).toBe(2);
    expect(driver.managedServer?.restartCount).toBe(1);
    expect(driver.managedServer?.pid).not.toBe(firstPid);
    const errors = (await eventsOf(env, "phoenix")).filter((e) => e.type === "error");
    expect(errors[0]?.errorCode).toBe("AGENT_UNAVAILABLE");
  }, 120_000);
});
