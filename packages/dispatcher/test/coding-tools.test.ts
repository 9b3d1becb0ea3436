import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import type { Task, TaskResult } from "@station-coding/protocol";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv();
});
afterEach(async () => {
  await env.close();
});

/**
 * Stands in for a worker: records every task published and answers with a result built by `answer`.
 * (The worker side of open/close/commit/push is not under test here.)
 */
async function stubWorker(answer: (task: Task) => Partial<TaskResult> = () => ({})): Promise<Task[]> {
  const seen: Task[] = [];
  const js = jetstream(env.nc);
  env.nc.subscribe(env.names.taskSubject, {
    callback: (_err, msg) => {
      const task = msg.json<Task>();
      seen.push(task);
      const result: TaskResult = {
        taskID: task.taskID,
        status: "completed",
        session: { name: task.session?.name ?? task.taskID, opencodeID: "", messageCount: 0 },
        workspace: { name: task.workspace?.name ?? "", path: `/ws/${task.workspace?.name ?? ""}` },
        metrics: { duration: 1, toolCalls: 0, streamEvents: 0 },
        ...answer(task),
      };
      // The dispatcher may see the result (and the test end) before this publish's ack arrives.
      js.publish(env.names.resultSubject(task.taskID), JSON.stringify(result)).catch(() => undefined);
    },
  });
  await env.nc.flush();
  return seen;
}

describe("coding tools", () => {
  it("codingOpen publishes an open task with the workspace and returns its result", async () => {
    const seen = await stubWorker();
    const dispatcher = await env.connect();
    const result = await dispatcher.codingOpen({
      session: "s1",
      workspace: "repo",
      git: { url: "https://example.com/r.git", branch: "main" },
      scope: "workflow",
      scopeID: "wf-1",
      cleanup: "manual",
      wait: "10s",
    });
    expect(result.status).toBe("completed");
    expect(result.workspace.path).toBe("/ws/repo");
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      op: "open",
      session: { name: "s1", continue: true },
      workspace: {
        name: "repo",
        git: { url: "https://example.com/r.git", branch: "main" },
        scope: "workflow",
        scopeID: "wf-1",
        cleanup: "manual",
      },
    });
    expect(seen[0]!.taskID).toMatch(/^open-/);
    expect(seen[0]!.prompt).toBeUndefined();
  });

  it("code publishes a code task and returns its handle", async () => {
    const seen = await stubWorker((task) => ({ result: `did: ${task.prompt ?? ""}` }));
    const dispatcher = await env.connect();
    const handle = await dispatcher.code({
      session: "s1",
      prompt: "fix the bug",
      taskID: "code-1",
      continue: false,
      agent: "build",
      model: { providerID: "p", modelID: "m" },
      timeout: 60_000,
      metadata: { ticket: "42" },
    });
    expect(handle.taskID).toBe("code-1");
    expect((await handle.result()).result).toBe("did: fix the bug");
    expect(seen[0]).toMatchObject({
      taskID: "code-1",
      op: "code",
      prompt: "fix the bug",
      session: { name: "s1", continue: false },
      workspace: { name: "s1" },
      agent: "build",
      model: { providerID: "p", modelID: "m" },
      timeout: 60_000,
      metadata: { ticket: "42" },
    });
  });

  it("codingClose, commit and push publish their ops and return the worker's answer", async () => {
    const seen = await stubWorker((task) => {
      if (task.op === "commit") {
        return {
          commit: {
            hash: "abc123",
            message: task.commit?.message,
            filesChanged: 1,
            insertions: 2,
            deletions: 0,
          },
        };
      }
      if (task.op === "push")
        return { push: { remote: task.push?.remote ?? "origin", branch: "main", commit: "abc123" } };
      return {};
    });
    const dispatcher = await env.connect();
    const committed = await dispatcher.commit({ session: "s1", message: "fix: the bug", all: false });
    expect(committed.commit).toEqual({
      hash: "abc123",
      message: "fix: the bug",
      filesChanged: 1,
      insertions: 2,
      deletions: 0,
    });
    const pushed = await dispatcher.push({
      session: "s1",
      remote: "upstream",
      branch: "main",
      setUpstream: true,
    });
    expect(pushed.push).toEqual({ remote: "upstream", branch: "main", commit: "abc123" });
    const closed = await dispatcher.codingClose({ session: "s1" });
    expect(closed.status).toBe("completed");

    expect(seen.map((t) => t.op)).toEqual(["commit", "push", "close"]);
    expect(seen[0]).toMatchObject({
      op: "commit",
      session: { name: "s1" },
      commit: { message: "fix: the bug", all: false },
    });
    expect(seen[1]).toMatchObject({
      op: "push",
      session: { name: "s1" },
      push: { remote: "upstream", branch: "main", setUpstream: true },
    });
    expect(seen[2]).toMatchObject({ op: "close", session: { name: "s1" }, workspace: { name: "s1" } });
  });

  it("rejects a commit without a message before publishing anything", async () => {
    const seen = await stubWorker();
    const dispatcher = await env.connect();
    await expect(dispatcher.commit({ session: "s1", message: "" })).rejects.toThrow(/commit\.message/);
    await expect(dispatcher.push({ session: "s1", branch: "-f" })).rejects.toThrow(
      /push\.branch "-f": must not start with "-"/,
    );
    expect(seen).toEqual([]);
  });
});
