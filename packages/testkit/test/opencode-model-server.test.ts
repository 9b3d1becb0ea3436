/**
 * The real `opencode serve` (opencode-ai 1.18.33) against the scripted model server: checks that the
 * scripted chunks drive OpenCode's tools, events, token accounting, permissions and errors the way
 * the worker expects. Permissions are left at OpenCode's defaults on purpose.
 */
import { spawn } from "node:child_process";
import type { ChildProcessByStdio } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";

import { createOpencodeClient } from "@opencode-ai/sdk/v2";
import type { AssistantMessage, Event, OpencodeClient, Part, ToolPart } from "@opencode-ai/sdk/v2";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";

import {
  ScriptedModelServer,
  createFileScenario,
  multiStepScenario,
  permissionAskScenario,
  providerErrorScenario,
  slowScenario,
} from "@station-coding/testkit";
import type { ScriptedUsage } from "@station-coding/testkit";

/** Model prices in $ per million tokens, to check how OpenCode turns usage into cost. */
const PRICE = { input: 1, output: 2, cache_read: 0.5, cache_write: 0 };
const TURN_TIMEOUT_MS = 20_000;

interface OpencodeProcess {
  url: string;
  child: ChildProcessByStdio<null, Readable, Readable>;
  output: () => string;
}

function opencodeBinary(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("opencode-ai/package.json")), "bin", "opencode.exe");
}

/**
 * At every instance start OpenCode runs an in-process `npm install @opencode-ai/plugin` in each
 * config directory that has no `node_modules`, or whose package-lock lacks that dependency. It
 * reaches the registry, and once it has run `opencode serve` ignored SIGTERM for minutes. A lock
 * that already lists the dependency skips the install: the test stays offline and stops at once.
 */
async function seedConfigDir(configDir: string): Promise<void> {
  await mkdir(join(configDir, "node_modules"), { recursive: true });
  const dependencies = { "@opencode-ai/plugin": "1.18.33" };
  await writeFile(join(configDir, "package.json"), JSON.stringify({ dependencies }));
  await writeFile(
    join(configDir, "package-lock.json"),
    JSON.stringify({ packages: { "": { dependencies } } }),
  );
}

/** Starts `opencode serve` on a free port with private HOME/XDG dirs and the scripted model. */
async function startOpencode(root: string, modelUrl: string): Promise<OpencodeProcess> {
  const home = join(root, "home");
  await seedConfigDir(join(home, ".config", "opencode"));
  const config = {
    model: "fake/fake-model",
    small_model: "fake/fake-model",
    autoupdate: false,
    share: "disabled",
    provider: {
      fake: {
        npm: "@ai-sdk/openai-compatible",
        name: "Fake",
        options: { baseURL: modelUrl, apiKey: "x" },
        models: {
          "fake-model": {
            name: "Fake",
            tool_call: true,
            cost: PRICE,
            limit: { context: 100_000, output: 4096 },
          },
        },
      },
    },
  };
  const child = spawn(opencodeBinary(), ["serve", "--hostname", "127.0.0.1", "--port", "0"], {
    cwd: root,
    // A minimal environment, so that no provider key or OPENCODE_* setting of the host leaks in.
    env: {
      PATH: process.env.PATH,
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_DATA_HOME: join(home, ".local", "share"),
      XDG_CACHE_HOME: join(home, ".cache"),
      XDG_STATE_HOME: join(home, ".local", "state"),
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_DISABLE_CLAUDE_CODE: "1",
      OPENCODE_CONFIG_CONTENT: JSON.stringify(config),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (data: string) => (output += data));
  child.stderr.setEncoding("utf8").on("data", (data: string) => (output += data));
  const exited = once(child, "exit");
  // `--port 0` takes 4096 when it is free, else a random port: always read the URL from stdout.
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`opencode did not start within 30 s:\n${output}`)),
      30_000,
    );
    const onData = (): void => {
      const found = /opencode server listening on (http:\/\/\S+)/.exec(output);
      if (found?.[1]) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        resolve(found[1]);
      }
    };
    child.stdout.on("data", onData);
    exited.then(
      ([code]) => {
        clearTimeout(timer);
        reject(new Error(`opencode exited with ${String(code)} before listening:\n${output}`));
      },
      () => undefined,
    );
  });
  return { url, child, output: () => output };
}

async function stopOpencode(opencode: OpencodeProcess): Promise<void> {
  const { child } = opencode;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** The events of one directory, collected in the background until closed. */
interface EventLog {
  events: Event[];
  close: () => Promise<void>;
}

async function followEvents(client: OpencodeClient, directory: string): Promise<EventLog> {
  const controller = new AbortController();
  const { stream } = await client.event.subscribe(
    { directory },
    { signal: controller.signal, sseMaxRetryAttempts: 1 },
  );
  const events: Event[] = [];
  let failure: unknown;
  const reading = (async () => {
    for await (const event of stream) events.push(event);
  })().catch((error: unknown) => {
    // Kept for close(), which every test awaits, so a broken stream fails the test that used it.
    if (!controller.signal.aborted) failure = error;
  });
  await vi.waitFor(() => expect(events.some((e) => e.type === "server.connected")).toBe(true));
  return {
    events,
    close: async () => {
      controller.abort();
      await reading;
      if (failure !== undefined) throw new Error(`event stream of ${directory} failed`, { cause: failure });
    },
  };
}

/** What OpenCode records for a usage, per the mapping this file verifies. */
function expectedTokens(usage: ScriptedUsage): AssistantMessage["tokens"] {
  const reasoning = usage.reasoning_tokens ?? 0;
  const cached = usage.cached_tokens ?? 0;
  return {
    total: usage.prompt_tokens + usage.completion_tokens,
    input: usage.prompt_tokens - cached,
    output: usage.completion_tokens - reasoning,
    reasoning,
    cache: { read: cached, write: 0 },
  };
}

describe("opencode serve with the scripted model server", () => {
  let root: string;
  let model: ScriptedModelServer;
  let opencode: OpencodeProcess;
  let client: OpencodeClient;
  let testIndex = 0;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "opencode-model-server-"));
    model = await ScriptedModelServer.start();
    opencode = await startOpencode(root, model.url);
    client = createOpencodeClient({ baseUrl: opencode.url });
  });

  afterAll(async () => {
    if (opencode) await stopOpencode(opencode);
    await model?.stop();
    if (root) await rm(root, { recursive: true, force: true });
  });

  /** A fresh workspace directory, a session in it, and its events followed from before the prompt. */
  async function newSession(): Promise<{ workspace: string; sessionID: string; log: EventLog }> {
    const workspace = join(root, `ws-${++testIndex}`);
    await mkdir(workspace);
    const log = await followEvents(client, workspace);
    const session = await client.session.create({ directory: workspace });
    if (!session.data) throw new Error(`session.create failed: ${JSON.stringify(session.error)}`);
    return { workspace, sessionID: session.data.id, log };
  }

  async function prompt(workspace: string, sessionID: string, text: string): Promise<void> {
    const sent = await client.session.promptAsync({
      sessionID,
      directory: workspace,
      parts: [{ type: "text", text }],
    });
    expect(sent.response.status).toBe(204);
  }

  function sessionEvents(log: EventLog, sessionID: string): Event[] {
    return log.events.filter((e) => "sessionID" in e.properties && e.properties.sessionID === sessionID);
  }

  async function waitForIdle(log: EventLog, sessionID: string): Promise<number> {
    await vi.waitFor(
      () => {
        if (!log.events.some((e) => e.type === "session.idle" && e.properties.sessionID === sessionID)) {
          throw new Error(
            `session ${sessionID} not idle; opencode output:\n${opencode.output().slice(-2000)}`,
          );
        }
      },
      { timeout: TURN_TIMEOUT_MS, interval: 50 },
    );
    return log.events.findIndex((e) => e.type === "session.idle" && e.properties.sessionID === sessionID);
  }

  async function assistantMessages(workspace: string, sessionID: string) {
    const messages = await client.session.messages({ sessionID, directory: workspace });
    if (!messages.data) throw new Error(`session.messages failed: ${JSON.stringify(messages.error)}`);
    return messages.data.filter(
      (m): m is { info: AssistantMessage; parts: Part[] } => m.info.role === "assistant",
    );
  }

  it("writes the file of a scripted write call and reports tool states, deltas and tokens", async () => {
    const scenario = createFileScenario({ match: "create hello one", file: "hello.txt", content: "hi\n" });
    model.addScenario(scenario);
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "please create hello one");
      const idleAt = await waitForIdle(log, sessionID);

      expect(await readFile(join(workspace, "hello.txt"), "utf8")).toBe("hi\n");

      const toolStates = log.events
        .slice(0, idleAt)
        .flatMap((e) => (e.type === "message.part.updated" && e.properties.part.type === "tool" ? [e] : []))
        .map((e) => e.properties.part as ToolPart)
        .map((p) => `${p.tool}:${p.state.status}`);
      expect(toolStates).toEqual(["write:pending", "write:running", "write:completed"]);

      const events = sessionEvents(log, sessionID);
      expect(events.some((e) => e.type === "message.part.delta" && e.properties.field === "text")).toBe(true);
      expect(events.filter((e) => e.type === "session.error")).toEqual([]);

      const assistants = await assistantMessages(workspace, sessionID);
      expect(assistants.map((m) => m.info.finish)).toEqual(["tool-calls", "stop"]);
      const usages = scenario.steps.map((s) => s.usage!);
      expect(assistants.map((m) => m.info.tokens)).toEqual(usages.map(expectedTokens));
      const stepFinishes = assistants.map((m) => m.parts.find((p) => p.type === "step-finish"));
      expect(stepFinishes.map((p) => p?.type === "step-finish" && p.reason)).toEqual(["tool-calls", "stop"]);

      // Two scripted calls; the second carries the earlier conversation and the tool result.
      const calls = model.scenarioCalls.filter((c) => c.scenario === "create-file");
      expect(calls.map((c) => c.step)).toEqual([0, 1]);
      const secondCall = calls[1]!.body.messages;
      expect(
        secondCall.some((m) => m.role === "assistant" && m.tool_calls?.[0]?.function.name === "write"),
      ).toBe(true);
      expect(secondCall.some((m) => m.role === "tool")).toBe(true);
      expect(model.fallbackCalls.some((c) => c.reason === "no-tools")).toBe(true);
    } finally {
      await log.close();
    }
  });

  it("runs write, edit, read and bash with reasoning and prices each step's usage", async () => {
    const scenario = multiStepScenario({ match: "multi step two", file: "notes.txt" });
    model.addScenario(scenario);
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "multi step two");
      await waitForIdle(log, sessionID);

      expect(await readFile(join(workspace, "notes.txt"), "utf8")).toBe("hello, edited world\n");
      const assistants = await assistantMessages(workspace, sessionID);
      const tools = assistants.flatMap((m) => m.parts.filter((p): p is ToolPart => p.type === "tool"));
      expect(tools.map((p) => `${p.tool}:${p.state.status}`)).toEqual([
        "write:completed",
        "edit:completed",
        "read:completed",
        "bash:completed",
      ]);
      const bash = tools[3]!.state;
      expect(bash.status === "completed" && bash.output).toBe("hello, edited world\n");
      expect(
        assistants.flatMap((m) => m.parts.filter((p) => p.type === "reasoning").map((p) => p.text)),
      ).toEqual(scenario.steps.flatMap((s) => (s.reasoning ? [s.reasoning] : [])));

      const usages = scenario.steps.map((s) => s.usage!);
      expect(assistants.map((m) => m.info.tokens)).toEqual(usages.map(expectedTokens));
      // Cost is per million tokens; reasoning is billed at the output price.
      const costs = usages.map((u) => {
        const t = expectedTokens(u);
        return (
          (t.input * PRICE.input +
            (t.output + t.reasoning) * PRICE.output +
            t.cache.read * PRICE.cache_read) /
          1e6
        );
      });
      assistants.forEach((m, i) => expect(m.info.cost).toBeCloseTo(costs[i]!, 12));
    } finally {
      await log.close();
    }
  });

  it("asks for external_directory before reading outside the workspace and continues once allowed", async () => {
    const outside = join(root, "outside");
    await mkdir(outside, { recursive: true });
    const secret = join(outside, "secret.txt");
    await writeFile(secret, "outside secret\n");
    model.addScenario(permissionAskScenario({ match: "read outside three", path: secret }));
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "read outside three");
      const asked = await vi.waitFor(
        () => {
          const event = log.events.find((e) => e.type === "permission.asked");
          if (event?.type !== "permission.asked") throw new Error("no permission.asked yet");
          return event;
        },
        { timeout: TURN_TIMEOUT_MS, interval: 50 },
      );
      expect(asked.properties).toMatchObject({
        sessionID,
        permission: "external_directory",
        patterns: [join(outside, "*")],
        always: [join(outside, "*")],
        metadata: { filepath: secret, parentDir: outside },
        tool: { callID: "call_0_0" },
      });
      expect(asked.properties.id).toMatch(/^per_/);
      // The tool waits in state running while the permission is pending.
      const status = await client.session.status({ directory: workspace });
      expect(status.data?.[sessionID]?.type).toBe("busy");

      const reply = await fetch(
        `${opencode.url}/permission/${asked.properties.id}/reply?directory=${encodeURIComponent(workspace)}`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ reply: "once" }),
        },
      );
      expect(reply.status).toBe(200);
      expect(await reply.json()).toBe(true);
      await waitForIdle(log, sessionID);

      expect(
        log.events.some(
          (e) => e.type === "permission.replied" && e.properties.requestID === asked.properties.id,
        ),
      ).toBe(true);
      const assistants = await assistantMessages(workspace, sessionID);
      const read = assistants.flatMap((m) => m.parts).find((p): p is ToolPart => p.type === "tool");
      expect(read?.state.status).toBe("completed");
      expect(read?.state.status === "completed" && read.state.output).toContain("outside secret");
      expect(assistants.at(-1)?.info.finish).toBe("stop");
    } finally {
      await log.close();
    }
  });

  it("turns a 401 from the provider into session.error and an assistant message with info.error", async () => {
    model.addScenario(providerErrorScenario({ match: "provider error four", status: 401 }));
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "provider error four");
      const idleAt = await waitForIdle(log, sessionID);

      const error = log.events.slice(0, idleAt).find((e) => e.type === "session.error");
      expect(error?.type === "session.error" && error.properties).toMatchObject({
        sessionID,
        error: { name: "APIError", data: { statusCode: 401, isRetryable: false } },
      });
      const assistants = await assistantMessages(workspace, sessionID);
      expect(assistants).toHaveLength(1);
      expect(assistants[0]!.info.error).toMatchObject({
        name: "APIError",
        data: { message: "scripted provider error 401", statusCode: 401 },
      });
      expect(assistants[0]!.parts).toEqual([]);
      expect(model.scenarioCalls.filter((c) => c.scenario === "provider-error-401")).toHaveLength(1);
    } finally {
      await log.close();
    }
  });

  it("retries a 500 five times, honouring retry-after-ms, then reports session.error", async () => {
    model.addScenario(providerErrorScenario({ match: "provider error five", status: 500 }));
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "provider error five");
      const idleAt = await waitForIdle(log, sessionID);

      const retries = log.events
        .slice(0, idleAt)
        .flatMap((e) => (e.type === "session.status" && e.properties.status.type === "retry" ? [e] : []))
        .map((e) => e.properties.status);
      expect(retries.map((s) => s.type === "retry" && s.attempt)).toEqual([1, 2, 3, 4, 5]);
      expect(model.scenarioCalls.filter((c) => c.scenario === "provider-error-500")).toHaveLength(6);
      const error = log.events.find((e) => e.type === "session.error");
      expect(error?.type === "session.error" && error.properties.error).toMatchObject({
        name: "APIError",
        data: { statusCode: 500, isRetryable: true },
      });
      const assistants = await assistantMessages(workspace, sessionID);
      expect(assistants.at(-1)?.info.error?.name).toBe("APIError");
    } finally {
      await log.close();
    }
  });

  it("disconnects from a slow model call when the session is aborted", async () => {
    model.addScenario(slowScenario({ match: "be slow six", delayMs: 60_000 }));
    const { workspace, sessionID, log } = await newSession();
    try {
      await prompt(workspace, sessionID, "be slow six");
      await vi.waitFor(() => expect(model.scenarioCalls.some((c) => c.scenario === "slow")).toBe(true), {
        timeout: TURN_TIMEOUT_MS,
      });
      const aborted = await client.session.abort({ sessionID, directory: workspace });
      expect(aborted.data).toBe(true);
      await waitForIdle(log, sessionID);

      const call = model.scenarioCalls.find((c) => c.scenario === "slow")!;
      await vi.waitFor(() => expect(call.outcome).toBe("disconnected"));
      const error = log.events.find((e) => e.type === "session.error");
      expect(error?.type === "session.error" && error.properties.error?.name).toBe("MessageAbortedError");
    } finally {
      await log.close();
    }
  });
});
