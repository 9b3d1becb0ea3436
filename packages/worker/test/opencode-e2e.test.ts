import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentContextStore } from "@station-coding/protocol";
import type { StreamEvent } from "@station-coding/protocol";
import {
  createFileScenario,
  multiStepScenario,
  permissionAskScenario,
  providerErrorScenario,
  slowScenario,
  toolCallScenario,
  waitFor,
} from "@station-coding/testkit";
import type { Scenario } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";

// Prices of the scripted model in dollars per million tokens (cost = sum over every step).
const PRICE = { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 };
const priced = { provider: { fake: { models: { "fake-model": { cost: PRICE } } } } };

let outside: string;
const scenarios = (): Scenario[] => [
  createFileScenario({ match: "create hello" }),
  multiStepScenario({ match: "multi step" }),
  {
    name: "live",
    match: "live tools",
    steps: [
      {
        toolCalls: [
          { name: "write", arguments: (ctx) => ({ filePath: `${ctx.workdir}/live.txt`, content: "x" }) },
        ],
      },
      { delayMs: 1_500, text: "done after a pause" },
    ],
  },
  { name: "remember", match: "remember the word", steps: [{ text: "I will remember banana." }] },
  { name: "recall", match: "what was the word", steps: [{ text: "The word was banana." }] },
  slowScenario({ match: "be slow", delayMs: 60_000 }),
  providerErrorScenario({ match: "provider error", status: 401, message: "invalid x-api-key for fake" }),
  permissionAskScenario({
    match: "read outside",
    path: "/etc/hostname",
    text: "Could not read it; moving on.",
  }),
  {
    name: "workdir-outside",
    match: "run outside",
    steps: [
      { toolCalls: [{ name: "bash", arguments: { command: "ls", description: "list", workdir: "/etc" } }] },
      { text: "Could not run it there; moving on." },
    ],
  },
  {
    name: "two-asks",
    match: "ask twice",
    steps: [
      {
        toolCalls: [
          { name: "bash", arguments: { command: "ls", description: "one", workdir: "/etc" } },
          { name: "bash", arguments: { command: "ls", description: "two", workdir: "/usr" } },
        ],
      },
      { text: "unreachable: OpenCode ends the turn after the second rejection" },
    ],
  },
  toolCallScenario({
    match: "call station_kv_set",
    tool: "station_kv_set",
    arguments: { key: "favourite", value: { colour: "green" } },
  }),
];

let env: Env;
let oc: Awaited<ReturnType<typeof startOpenCode>>;

beforeAll(async () => {
  outside = await mkdtemp(join(tmpdir(), "outside-"));
  env = await startEnv(undefined, { monitor: true });
  oc = await startOpenCode(scenarios(), { server: { config: priced }, workspaceRoot: env.workspaceDir });
  await startWorker(env, oc.driver, { ackWait: 5_000, concurrency: 4 });
}, 60_000);
afterAll(async () => {
  await env?.close();
  await oc?.close();
});

function costOf(t: {
  input: number;
  output: number;
  reasoning: number;
  cacheRead: number;
  cacheWrite: number;
}) {
  return (
    (t.input * PRICE.input +
      (t.output + t.reasoning) * PRICE.output +
      t.cacheRead * PRICE.cache_read +
      t.cacheWrite * PRICE.cache_write) /
    1e6
  );
}

async function sessionIdle(directory: string, sessionID: string): Promise<boolean> {
  const res = await fetch(`${oc.driver.url}/session/status?directory=${encodeURIComponent(directory)}`, {
    headers: oc.driver.managedServer?.authHeaders(),
  });
  const status = (await res.json()) as Record<string, { type: string }>;
  return status[sessionID] === undefined || status[sessionID]?.type === "idle";
}

describe("OpenCode end to end (real opencode serve, scripted model)", () => {
  it("creates a file; tokens and cost equal the scripted usage summed over all steps", async () => {
    await publishTask(env, { taskID: "oc-create", prompt: "please create hello" });
    const result = await waitResult(env, "oc-create", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    expect(readFileSync(join(result.workspace.path, "hello.txt"), "utf8")).toBe("hello\n");
    expect(result.metrics.toolCalls).toBe(1);
    expect(result.metrics.steps).toBe(2);
    expect(result.metrics.tokens).toEqual({
      input: 270,
      output: 40,
      reasoning: 0,
      cacheRead: 0,
      cacheWrite: 0,
    });
    expect(result.metrics.promptTokens).toBe(270);
    expect(result.metrics.completionTokens).toBe(40);
    expect(result.metrics.cost).toBeCloseTo(costOf(result.metrics.tokens!), 10);
    expect(result.metrics.cost).toBeGreaterThan(0);
    expect(result.metrics).toMatchObject({ model: "fake-model", provider: "fake", finishReason: "stop" });
    expect(result.result).toBe("Created hello.txt.");
    expect(result.changes?.files.map((f) => [f.path, f.status])).toEqual([["hello.txt", "added"]]);
  }, 90_000);

  it("streams every tool call of a multi-step task as tool_start/tool_end in order, with reasoning", async () => {
    await publishTask(env, { taskID: "oc-multi", prompt: "do the multi step thing" });
    const result = await waitResult(env, "oc-multi", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const events = await eventsOf(env, "oc-multi");
    const tools = events.filter((e) => e.type === "tool_start" || e.type === "tool_end");
    expect(tools.map((e) => `${e.type}:${e.tool?.name}`)).toEqual([
      "tool_start:write",
      "tool_end:write",
      "tool_start:edit",
      "tool_end:edit",
      "tool_start:read",
      "tool_end:read",
      "tool_start:bash",
      "tool_end:bash",
    ]);
    const bashEnd = tools.find((e) => e.type === "tool_end" && e.tool?.name === "bash");
    expect(bashEnd?.tool?.exitCode).toBe(0);
    expect(bashEnd?.tool?.output).toContain("hello, edited");
    for (const end of tools.filter((e) => e.type === "tool_end"))
      expect(end.tool?.duration).toBeGreaterThanOrEqual(0);
    expect(events.some((e) => e.type === "thinking")).toBe(true);
    expect(result.metrics.toolCalls).toBe(4);
    expect(result.metrics.tokens).toEqual({
      input: 260,
      output: 72,
      reasoning: 18,
      cacheRead: 640,
      cacheWrite: 0,
    });
    expect(result.metrics.cost).toBeCloseTo(costOf(result.metrics.tokens!), 10);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
  }, 90_000);

  it("delivers the first tool_start live, before the turn ends", async () => {
    const seen: { type: string; at: number }[] = [];
    const sub = env.nc.subscribe(env.names.streamSubject("oc-live"), {
      callback: (_err, msg) => void seen.push({ type: msg.json<StreamEvent>().type, at: Date.now() }),
    });
    const resultSub = env.nc.subscribe(env.names.resultSubject("oc-live"));
    let resultAt = 0;
    void (async () => {
      for await (const _ of resultSub) {
        resultAt = Date.now();
        break;
      }
    })();
    await publishTask(env, { taskID: "oc-live", prompt: "live tools please" });
    await waitFor(() => resultAt > 0, { timeout: 60_000, message: "result" });
    sub.unsubscribe();
    const firstTool = seen.find((e) => e.type === "tool_start");
    expect(firstTool).toBeDefined();
    // The model pauses 1.5 s after the tool call: the event arrived well before the result.
    expect(resultAt - firstTool!.at).toBeGreaterThan(1_000);
  }, 90_000);

  it("reuses the OpenCode session for a second task and the model sees the earlier conversation", async () => {
    await publishTask(env, {
      taskID: "oc-s1",
      session: { name: "memory" },
      prompt: "remember the word banana",
    });
    const first = await waitResult(env, "oc-s1", 60_000);
    await publishTask(env, { taskID: "oc-s2", session: { name: "memory" }, prompt: "what was the word?" });
    const second = await waitResult(env, "oc-s2", 60_000);
    expect(second.status).toBe("completed");
    expect(second.session.opencodeID).toBe(first.session.opencodeID);
    expect(second.session.messageCount).toBe(2);
    expect((await eventsOf(env, "oc-s2")).some((e) => e.type === "session_reused")).toBe(true);
    const recall = oc.model.scenarioCalls.filter((c) => c.scenario === "recall").at(-1);
    const transcript = JSON.stringify(recall?.body.messages);
    expect(transcript).toContain("remember the word banana");
    expect(transcript).toContain("I will remember banana.");

    await publishTask(env, {
      taskID: "oc-s3",
      session: { name: "memory", continue: false },
      prompt: "what was the word?",
    });
    const fresh = await waitResult(env, "oc-s3", 60_000);
    expect(fresh.session.opencodeID).not.toBe(first.session.opencodeID);
    expect(fresh.session.messageCount).toBe(1);
  }, 120_000);

  it("cancels mid-step: status cancelled, and OpenCode's session is idle afterwards", async () => {
    await publishTask(env, { taskID: "oc-cancel", prompt: "please be slow" });
    await waitFor(async () => (await eventsOf(env, "oc-cancel")).some((e) => e.type === "prompt_sent"), {
      timeout: 30_000,
      message: "prompt sent",
    });
    await waitFor(
      () => oc.model.scenarioCalls.some((c) => c.scenario === "slow" && c.outcome === undefined),
      {
        timeout: 30_000,
        message: "model call in progress",
      },
    );
    await jetstream(env.nc).publish(
      env.names.cancelSubject("oc-cancel"),
      JSON.stringify({ taskID: "oc-cancel" }),
    );
    const result = await waitResult(env, "oc-cancel", 30_000);
    expect(result.status).toBe("cancelled");
    expect(await sessionIdle(result.workspace.path, result.session.opencodeID)).toBe(true);
    await waitFor(
      () => oc.model.scenarioCalls.find((c) => c.scenario === "slow")?.outcome === "disconnected",
      {
        message: "model request closed by the abort",
      },
    );
  }, 90_000);

  it("times out mid-step: status timeout, and OpenCode's session is idle afterwards", async () => {
    await publishTask(env, { taskID: "oc-timeout", prompt: "please be slow again", timeout: 4_000 });
    const result = await waitResult(env, "oc-timeout", 60_000);
    expect(result.status).toBe("timeout");
    expect(await sessionIdle(result.workspace.path, result.session.opencodeID)).toBe(true);
  }, 90_000);

  it("turns a provider error into an error result with the provider's message", async () => {
    await publishTask(env, { taskID: "oc-provider", prompt: "trigger a provider error" });
    const result = await waitResult(env, "oc-provider", 60_000);
    expect(result.status).toBe("error");
    expect(result.errorCode).toBe("AGENT_ERROR");
    expect(result.error).toContain("invalid x-api-key for fake");
    expect((await eventsOf(env, "oc-provider")).some((e) => e.type === "error")).toBe(true);
  }, 90_000);

  it("answers a permission ask by policy (reject outside the workspace) and the task finishes", async () => {
    await publishTask(env, { taskID: "oc-perm", prompt: "run outside the workspace" });
    const result = await waitResult(env, "oc-perm", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const permission = (await eventsOf(env, "oc-perm")).find((e) => e.type === "permission");
    expect(permission?.permission).toMatchObject({
      kind: "permission",
      permission: "external_directory",
      decision: "reject",
    });
    expect(permission?.permission?.reason).toContain("no human is available");
  }, 90_000);

  it("finishes a task whose parallel permission prompts were rejected, when OpenCode ends the turn", async () => {
    await publishTask(env, { taskID: "oc-asks", prompt: "ask twice please" });
    const result = await waitResult(env, "oc-asks", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const events = await eventsOf(env, "oc-asks");
    expect(events.filter((e) => e.type === "permission").length).toBeGreaterThanOrEqual(1);
    const ends = events.filter((e) => e.type === "tool_end");
    expect(ends.map((e) => e.tool?.status)).toEqual(["error", "error"]);
  }, 90_000);

  it("refuses a file tool outside the workspace before OpenCode asks, as a permission event", async () => {
    await writeFile(join(outside, "secret.txt"), "no");
    await publishTask(env, { taskID: "oc-guard", prompt: "read outside the workspace" });
    const result = await waitResult(env, "oc-guard", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const events = await eventsOf(env, "oc-guard");
    const permission = events.find((e) => e.type === "permission");
    expect(permission?.permission).toMatchObject({
      kind: "permission",
      permission: "read",
      patterns: ["/etc/hostname"],
      decision: "reject",
    });
    expect(permission?.permission?.reason).toContain("outside the task's workspace");
    const end = events.find((e) => e.type === "tool_end" && e.tool?.name === "read");
    expect(end?.tool?.status).toBe("error");
  }, 90_000);

  it("writes what the model stores with station_kv_set to the agent-context bucket", async () => {
    await publishTask(env, { taskID: "oc-kv", agentID: "agent-7", prompt: "please call station_kv_set" });
    const result = await waitResult(env, "oc-kv", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const store = await AgentContextStore.open(env.nc, env.names);
    expect((await store.get("agent-7", "favourite"))?.value).toEqual({ colour: "green" });
  }, 90_000);

  it("holds exactly one task consumer and one NATS connection with 3 workspace directories in use", async () => {
    for (const id of ["d1", "d2", "d3"]) {
      await publishTask(env, {
        taskID: `oc-dir-${id}`,
        workspace: { name: `dir-${id}` },
        prompt: "create hello",
      });
    }
    for (const id of ["d1", "d2", "d3"])
      expect((await waitResult(env, `oc-dir-${id}`, 60_000)).status).toBe("completed");
    const jsm = await jetstreamManager(env.nc);
    const consumers: string[] = [];
    for await (const c of jsm.consumers.list(env.names.streams.tasks)) consumers.push(c.name);
    expect(consumers).toEqual([env.names.consumer]);
    const info = await jsm.consumers.info(env.names.streams.tasks, env.names.consumer);
    // One pull request at a time per free slot of the one worker (concurrency 4), never more.
    expect(info.num_waiting).toBeLessThanOrEqual(4);
    expect(existsSync(join(env.workspaceDir, "dir-d3", "hello.txt"))).toBe(true);
    // OpenCode initialised the station tools plugin per directory; none of it opened a connection.
    const connz = (await (await fetch(`${env.server.monitorUrl}/connz`)).json()) as {
      connections: { name?: string }[];
    };
    const workers = connz.connections.filter((c) => c.name?.startsWith("station-coding-worker"));
    expect(workers).toHaveLength(1);
    expect(connz.connections).toHaveLength(2); // the worker and this test's client
  }, 120_000);
});
