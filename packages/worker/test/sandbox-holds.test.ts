// A tool call's hold on its workspace (bash alone, file tools together) ends on every path, with
// real OpenCode and a scripted model: a tool that throws, a task cancelled or timed out mid-tool
// (its waiting calls abandoned too), and a subagent whose `task` call must not hold the workspace
// its own calls need. Each test would hang, until the task's time limit, if its release were
// missing: the task after it, or the next step, would wait for a hold nobody lets go of.
import { readFileSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, waitFor } from "@station-coding/testkit";
import type { Scenario, ScriptedToolCall } from "@station-coding/testkit";
import type { TaskResult } from "@station-coding/protocol";
import type { Env } from "@station-coding/testkit/worker";
import {
  eventsOf,
  publishTask,
  startEnv,
  startOpenCode,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";
import { toolCall, workdirOf } from "./support/hostile-agent.js";
import { callMarker } from "@station-coding/worker/internal";

const BEAT = uniqueName("beat");

const ws = workdirOf;
const call = toolCall;
const bash = (id: string, command: string, extra: Record<string, unknown> = {}) =>
  call(id, "bash", () => ({ command, description: id, ...extra }));

/** A bash call that runs until it is killed, leaving a heartbeat file in the workspace. */
const endless = (id: string) => bash(id, `while :; do date +%s%N > ${BEAT}-${id}; sleep 0.05; done`);

/** Calls that show the workspace is free again: bash (alone) and file tools (together). */
const afterwards = (tag: string): ScriptedToolCall[] => [
  bash(`${tag}-bash`, `echo ${tag} > ${tag}-bash.txt`),
  call(`${tag}-write`, "write", (ctx) => ({ filePath: `${ws(ctx)}/${tag}-write.txt`, content: tag })),
  call(`${tag}-read`, "read", (ctx) => ({ filePath: ws(ctx) })),
];

const scenarios = (): Scenario[] => [
  {
    name: "throwing",
    match: "tools that throw",
    steps: [
      // Each throws inside OpenCode after its hold was granted; `tool.execute.after` never runs.
      // (bash: its workdir outside is refused by the permission policy, inside OpenCode's execute.)
      { toolCalls: [bash("bad-workdir", "echo never", { workdir: "/etc" })] },
      {
        toolCalls: [
          call("edit-missing", "edit", (ctx) => ({
            filePath: `${ws(ctx)}/missing.txt`,
            oldString: "a",
            newString: "b",
          })),
          // Refused by the check itself.
          call("write-outside", "write", () => ({ filePath: "/etc/station-refused", content: "x" })),
        ],
      },
      { toolCalls: [bash("then-bash", "echo after > after-bash.txt")] },
      { toolCalls: afterwards("then") },
      { text: "Errors handled." },
    ],
  },
  {
    name: "stuck",
    match: "never ends",
    // The write waits behind the bash call when the task is stopped.
    steps: [
      {
        toolCalls: [
          endless("forever"),
          call("late-write", "write", (ctx) => ({
            filePath: `${ws(ctx)}/late-${Date.now()}.txt`,
            content: "written after its task was stopped",
          })),
        ],
      },
    ],
  },
  { name: "next", match: "next in line", steps: [{ toolCalls: afterwards("next") }, { text: "Free." }] },
  {
    name: "delegate",
    match: "delegate to a subagent",
    steps: [
      {
        toolCalls: [
          call("delegate", "task", () => ({
            description: "child work",
            prompt: "subagent chores",
            subagent_type: "general",
          })),
          ...afterwards("parent"),
        ],
      },
      { text: "Delegated." },
    ],
  },
  {
    name: "child",
    match: "subagent chores",
    steps: [{ toolCalls: afterwards("child") }, { text: "Child done." }],
  },
];

let env: Env;
let oc: Awaited<ReturnType<typeof startOpenCode>>;

beforeAll(async () => {
  env = await startEnv();
  oc = await startOpenCode(scenarios(), { workspaceRoot: env.workspaceDir });
  await startWorker(env, oc.driver, { ackWait: 5_000, concurrency: 2 });
}, 60_000);
afterAll(async () => {
  await env?.close();
  await oc?.close();
});

/** Tool ends of a task, by call id. */
async function toolEnds(taskID: string) {
  const events = await eventsOf(env, taskID);
  return new Map(events.filter((e) => e.type === "tool_end").map((e) => [e.tool!.callID, e.tool!]));
}

/** Processes on this machine (the server's sandbox included) whose command line names `mark`. */
function processesNaming(mark: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(mark)) found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * Starts a task whose bash call never ends and whose write waits behind it, and resolves once
 * both are so.
 */
async function startStuck(taskID: string, timeout?: number): Promise<void> {
  await publishTask(env, {
    taskID,
    workspace: { name: "contended" },
    prompt: "this never ends",
    ...(timeout ? { timeout } : {}),
  });
  await waitFor(() => processesNaming(`${BEAT}-forever`).length > 0, {
    timeout: 30_000,
    message: "the endless bash call running",
  });
  // Its sandbox carries the call's marker, by which the worker would kill it if OpenCode did not.
  const opencodeID = await waitFor(
    async () => (await eventsOf(env, taskID)).find((e) => e.type === "session_created")?.session?.opencodeID,
    { message: "the session" },
  );
  await waitFor(() => processesNaming(callMarker(opencodeID, "forever")).length > 0, {
    message: "the call's marker on its sandbox",
  });
  const contended = realpathSync(join(env.workspaceDir, "contended"));
  await waitFor(() => oc.driver.workspaceHolds(contended).waiting.length > 0, {
    timeout: 30_000,
    message: "the write waiting for the workspace",
  });
}

async function cancel(taskID: string): Promise<void> {
  await jetstream(env.nc).publish(env.names.cancelSubject(taskID), JSON.stringify({ taskID }));
}

/**
 * After the stuck task ended: its bash call's processes are gone, its write never ran (the result
 * comes after changes are collected, which waits for any write still holding the workspace), and
 * the next task in the same workspace, which needs bash alone and file tools in turn, completes:
 * it would hang if any hold had been left behind.
 */
async function expectWorkspaceFree(stuck: TaskResult, next: string): Promise<void> {
  expect(processesNaming(`${BEAT}-forever`)).toEqual([]);
  expect(readdirSync(stuck.workspace.path).filter((name) => name.startsWith("late-"))).toEqual([]);
  await publishTask(env, { taskID: next, workspace: { name: "contended" }, prompt: "next in line" });
  const result = await waitResult(env, next, 60_000);
  expect(result.status, JSON.stringify(result)).toBe("completed");
  const ends = await toolEnds(next);
  for (const id of ["next-bash", "next-write", "next-read"])
    expect(ends.get(id)?.status, id).toBe("completed");
}

describe("a tool call's hold on its workspace", () => {
  it("ends when the tool throws or is refused, so the next steps run", async () => {
    await publishTask(env, { taskID: "holds-throw", prompt: "tools that throw" });
    const result = await waitResult(env, "holds-throw", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const ends = await toolEnds("holds-throw");
    expect(ends.get("bad-workdir")?.error).toContain("no human is available");
    expect(ends.get("edit-missing")?.status).toBe("error");
    expect(ends.get("write-outside")?.error).toContain("outside the task's workspace");
    for (const id of ["then-bash", "then-write", "then-read"])
      expect(ends.get(id)?.status, id).toBe("completed");
    expect(readFileSync(join(result.workspace.path, "then-write.txt"), "utf8")).toBe("then");
  }, 90_000);

  it("ends when the task is cancelled mid-tool, and its waiting calls never run", async () => {
    await startStuck("holds-cancel");
    await cancel("holds-cancel");
    const result = await waitResult(env, "holds-cancel", 30_000);
    expect(result.status).toBe("cancelled");
    await expectWorkspaceFree(result, "holds-after-cancel");
  }, 120_000);

  it("ends when the task times out mid-tool, and its waiting calls never run", async () => {
    await startStuck("holds-timeout", 8_000);
    const result = await waitResult(env, "holds-timeout", 60_000);
    expect(result.status).toBe("timeout");
    await expectWorkspaceFree(result, "holds-after-timeout");
  }, 120_000);

  it("holds the worker's own git back while another task's bash call runs in the workspace", async () => {
    await startStuck("holds-stuck-3");
    await publishTask(env, {
      taskID: "holds-prepare",
      workspace: { name: "contended" },
      prompt: "next in line",
    });
    // Either its preparation waits for the bash call (a request of the worker's own in the
    // queue), or, were there no hold, it ran beside it.
    const contended = realpathSync(join(env.workspaceDir, "contended"));
    await waitFor(
      async () =>
        oc.driver.workspaceHolds(contended).waiting.some((w) => w.key.startsWith("worker")) ||
        (await eventsOf(env, "holds-prepare")).some((e) => e.type === "workspace_reused"),
      { timeout: 30_000, message: "the second task's preparation waiting or done" },
    );
    const cancelledAt = Date.now();
    await cancel("holds-stuck-3");
    expect((await waitResult(env, "holds-stuck-3", 30_000)).status).toBe("cancelled");
    const result = await waitResult(env, "holds-prepare", 60_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const prepared = (await eventsOf(env, "holds-prepare")).find((e) => e.type === "workspace_reused");
    expect(Date.parse(prepared?.timestamp ?? "")).toBeGreaterThanOrEqual(cancelledAt);
  }, 120_000);

  it("is never taken by the task tool, whose subagent's calls hold the same workspace", async () => {
    await publishTask(env, { taskID: "holds-subagent", prompt: "delegate to a subagent" });
    const result = await waitResult(env, "holds-subagent", 90_000);
    expect(result.status, JSON.stringify(result)).toBe("completed");
    const ends = await toolEnds("holds-subagent");
    expect(ends.get("delegate")?.status).toBe("completed");
    for (const tag of ["parent", "child"]) {
      expect(readFileSync(join(result.workspace.path, `${tag}-bash.txt`), "utf8")).toBe(`${tag}\n`);
      expect(readFileSync(join(result.workspace.path, `${tag}-write.txt`), "utf8")).toBe(tag);
    }
  }, 120_000);
});
