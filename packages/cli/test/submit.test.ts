// `submit`, `watch`, `result` and `cancel` of the built CLI against a real nats-server and an
// in-process worker running the scripted driver.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { uniqueName } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import { ScriptedDriver, script, startEnv, startWorker } from "@station-coding/testkit/worker";
import { Cli, linesOf } from "./support/cli.js";

let env: Env;
let driver: ScriptedDriver;
let cli: Cli;

beforeAll(async () => {
  env = await startEnv();
  driver = new ScriptedDriver();
  await startWorker(env, driver, { concurrency: 4, shutdownGrace: 1_000 });
  cli = new Cli(env.server.url);
});
afterEach(async () => {
  await cli.killAll();
});
afterAll(async () => {
  await env?.close();
});

/** Seq and type of every human event line (`   3 prompt_sent       ...`). */
function eventLines(stdout: string): { seq: number; type: string; line: string }[] {
  return linesOf(stdout).flatMap((line) => {
    const match = /^\s*(\d+) (\S+)/.exec(line);
    return match ? [{ seq: Number(match[1]), type: match[2]!, line }] : [];
  });
}

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
const LONG_SLEEP = script({ text: "working" }, { sleep: 30_000 }, { text: "never" });

describe("submit", () => {
  it("follows a task's events in order and prints the result summary", async () => {
    const id = uniqueName("follow");
    const prompt = script(
      { text: "hello " },
      { tool: { name: "bash", args: { command: "ls -la" } } },
      { text: "world" },
    );
    const run = await cli.run(["submit", prompt, "--task-id", id]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toBe("");
    const events = eventLines(run.stdout);
    expect(events.map((e) => e.seq)).toEqual(oneTo(8));
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
    expect(events[5]!.line).toMatch(/tool_start\s+bash ls -la$/);
    expect(events[6]!.line).toMatch(/tool_end\s+bash completed in 1ms$/);
    expect(run.stdout).toContain(`task ${id} completed in`);
    expect(run.stdout).toMatch(/tokens\s+15 \(10 in, 5 out\)/);
    expect(run.stdout).toMatch(/tool calls\s+1/);
    expect(linesOf(run.stdout).at(-1)).toBe("hello world");
  });

  it("prints one JSON object per line with --json, the result last", async () => {
    const id = uniqueName("json");
    const run = await cli.run(["submit", script({ text: "a" }, { text: "b" }), "--task-id", id, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const lines = linesOf(run.stdout).map((line) => JSON.parse(line) as { type: string });
    const result = lines.at(-1) as TaskResult & { type: string };
    expect(result).toMatchObject({ type: "result", taskID: id, status: "completed", result: "ab" });
    const events = lines.slice(0, -1) as StreamEvent[];
    expect(events.map((e) => e.seq)).toEqual(oneTo(result.metrics.streamEvents));
    expect(events.every((e) => e.taskID === id)).toBe(true);
  });

  it("exits 1 when the task ends in error, with the error in the summary", async () => {
    const id = uniqueName("error");
    const run = await cli.run([
      "submit",
      script({ fail: { message: "boom", retryable: false } }),
      "--task-id",
      id,
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`task ${id} error in`);
    expect(run.stdout).toMatch(/error\s+\[AGENT_ERROR\] boom/);
  });

  it("exits 3 when the task runs past --timeout", async () => {
    const id = uniqueName("timeout");
    const run = await cli.run(["submit", LONG_SLEEP, "--task-id", id, "--timeout", "300ms"]);
    expect(run.code, run.stdout + run.stderr).toBe(3);
    expect(run.stdout).toContain(`task ${id} timeout in`);
  });

  it("exits 4 when another process cancels the task while it waits", async () => {
    const id = uniqueName("cancel");
    const submit = cli.spawn(["submit", LONG_SLEEP, "--task-id", id]);
    await submit.waitForOutput(/prompt_sent/);
    const cancel = await cli.run(["cancel", id, "--reason", "test"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toBe(`cancel requested for task ${id} (it was running)\n`);
    const run = await submit.wait();
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stdout).toContain(`task ${id} cancelled in`);
  });

  it("prints the taskID with --no-wait, and watch replays the events from seq 1", async () => {
    const id = uniqueName("nowait");
    const submitted = await cli.run(["submit", script({ text: "x" }), "--task-id", id, "--no-wait"]);
    expect(submitted.code, submitted.stderr).toBe(0);
    expect(submitted.stdout).toBe(`${id}\n`);
    const watch = await cli.run(["watch", id]);
    expect(watch.code, watch.stderr).toBe(0);
    const events = eventLines(watch.stdout);
    expect(events.map((e) => e.seq)).toEqual(oneTo(events.length));
    expect(events[0]!.type).toBe("task_started");
    expect(watch.stdout).toContain(`task ${id} completed in`);
    // Watching a finished task replays the same events again.
    const again = await cli.run(["watch", id, "--json"]);
    expect(again.code).toBe(0);
    expect(linesOf(again.stdout)).toHaveLength(events.length + 1);
  });

  it("result says a running task has no result yet (exit 5), and --wait waits for it", async () => {
    const id = uniqueName("result");
    const prompt = script({ sleep: 1_500 }, { text: "done" });
    expect((await cli.run(["submit", prompt, "--task-id", id, "--no-wait"])).code).toBe(0);
    const early = await cli.run(["result", id]);
    expect(early.code).toBe(5);
    expect(linesOf(early.stderr)).toHaveLength(1);
    expect(early.stderr).toMatch(new RegExp(`task ${id} has no result yet: still (queued|running)`));
    const waited = await cli.run(["result", id, "--wait", "--json"]);
    expect(waited.code, waited.stderr).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ type: "result", taskID: id, result: "done" });
    const stored = await cli.run(["result", id]);
    expect(stored.code).toBe(0);
    expect(stored.stdout).toContain(`task ${id} completed in`);
  });

  it("runs a task once when two submits use the same --task-id", async () => {
    const id = uniqueName("dup");
    const prompt = script({ sleep: 300 }, { text: "once" });
    const [first, second] = await Promise.all([
      cli.run(["submit", prompt, "--task-id", id]),
      cli.run(["submit", prompt, "--task-id", id]),
    ]);
    expect([first.code, second.code]).toEqual([0, 0]);
    expect([first.stderr, second.stderr].filter((s) => s.includes("already submitted"))).toHaveLength(1);
    const late = await cli.run(["submit", prompt, "--task-id", id, "--json"]);
    expect(late.code).toBe(0);
    expect(late.stderr).toContain(`task ${id} was already submitted`);
    expect(driver.calls.filter((call) => call.taskID === id)).toHaveLength(1);
  });

  it("stops waiting at --wait-timeout with exit 5 saying where the task stands", async () => {
    const id = uniqueName("waitlimit");
    const run = await cli.run(["submit", LONG_SLEEP, "--task-id", id, "--wait-timeout", "1s"]);
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(new RegExp(`task ${id}: no result after waiting .*still (queued|running)`));
    expect(run.stderr).toContain(`Re-attach with: station-coding watch ${id}`);
    expect((await cli.run(["cancel", id])).code).toBe(0);
  });
});

describe("signals", () => {
  it("detaches on Ctrl-C with exit 130 and says how to re-attach; the task goes on", async () => {
    const id = uniqueName("detach");
    const submit = cli.spawn(["submit", LONG_SLEEP, "--task-id", id]);
    await submit.waitForOutput(/prompt_sent/);
    submit.child.kill("SIGINT");
    const run = await submit.wait();
    expect(run.code).toBe(130);
    expect(linesOf(run.stderr)).toEqual([
      `detached from task ${id}; it goes on. Re-attach with: station-coding watch ${id}`,
    ]);
    const still = await cli.run(["result", id]);
    expect(still.code).toBe(5);
    expect(still.stderr).toContain("still running on worker");
    expect((await cli.run(["cancel", id])).code).toBe(0);
  });

  it("cancels the task on Ctrl-C with --cancel-on-exit and exits 4 with the cancelled result", async () => {
    const id = uniqueName("cancelexit");
    const submit = cli.spawn(["submit", LONG_SLEEP, "--task-id", id, "--cancel-on-exit"]);
    await submit.waitForOutput(/prompt_sent/);
    submit.child.kill("SIGINT");
    const run = await submit.wait();
    expect(run.code, run.stdout + run.stderr).toBe(4);
    expect(run.stderr).toContain(`cancelling task ${id} (Ctrl-C)`);
    expect(run.stdout).toContain(`task ${id} cancelled in`);
  });
});
