// `--input`, `artifacts`, `sessions`, `context` and `dlq` of the built CLI against a real
// nats-server and an in-process worker running the scripted driver.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ArtifactRef, DeadLetter, SessionState } from "@station-coding/protocol";
import { GitServer, tempDir, uniqueName } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import {
  ScriptedDriver,
  publishTask,
  script,
  startEnv,
  startWorker,
  waitResult,
} from "@station-coding/testkit/worker";
import { Cli, linesOf } from "./support/cli.js";

const GIT_TOKEN = "ghp_clidlqtokenvalue1234567890abcdef";
let env: Env;
let cli: Cli;
let dir: string;
let git: GitServer;

beforeAll(async () => {
  env = await startEnv();
  git = await GitServer.start({ token: GIT_TOKEN });
  await git.createRepo("app", { "README.md": "# app\n" });
  // One attempt: a retryable failure is dead-lettered at once.
  await startWorker(env, new ScriptedDriver(), {
    concurrency: 2,
    maxAttempts: 1,
    shutdownGrace: 1_000,
    git: { allowHttp: true },
  });
  cli = new Cli(env.server.url);
  dir = await tempDir("cli-stores");
});
afterEach(async () => {
  await cli.killAll();
});
afterAll(async () => {
  await env?.close();
  await git?.[Symbol.asyncDispose]();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const jsonLines = <T>(stdout: string): T[] => linesOf(stdout).map((line) => JSON.parse(line) as T);

describe("artifacts", () => {
  it("stages --input files before submitting; artifacts ls lists them, get downloads, rm deletes", async () => {
    const id = uniqueName("inputs");
    const notes = join(dir, "notes.txt");
    const data = join(dir, "data.json");
    await writeFile(notes, "read me\n");
    await writeFile(data, '{"n":1}');
    const run = await cli.run([
      "submit",
      script({ text: "ok" }),
      "--task-id",
      id,
      "--input",
      notes,
      "--input",
      data,
    ]);
    expect(run.code, run.stdout + run.stderr).toBe(0);

    const ls = await cli.run(["artifacts", "ls", id, "--json"]);
    expect(ls.code, ls.stderr).toBe(0);
    const refs = jsonLines<ArtifactRef>(ls.stdout);
    expect(refs.filter((ref) => ref.kind === "input").map((ref) => ref.key)).toEqual([
      `input/${id}/data.json`,
      `input/${id}/notes.txt`,
    ]);
    const table = await cli.run(["artifacts", "ls", id]);
    expect(table.stdout).toMatch(new RegExp(`input/${id}/notes\\.txt\\s+input\\s+8 B`));

    const out = join(dir, "downloaded.txt");
    const get = await cli.run(["artifacts", "get", `input/${id}/notes.txt`, "-o", out]);
    expect(get.code, get.stderr).toBe(0);
    expect(await readFile(out, "utf8")).toBe("read me\n");
    const toStdout = await cli.run(["artifacts", "get", `input/${id}/data.json`]);
    expect(toStdout.stdout).toBe('{"n":1}');
    const missing = await cli.run(["artifacts", "get", `input/${id}/nope.txt`]);
    expect(missing.code).toBe(1);
    expect(linesOf(missing.stderr)).toEqual([expect.stringContaining("not found")]);

    const removed = await cli.run(["artifacts", "rm", id]);
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(new RegExp(`removed ${refs.length} objects of task ${id}`));
    expect((await cli.run(["artifacts", "ls", id])).stdout).toBe(`no objects for task ${id}\n`);
  });
});

describe("sessions", () => {
  it("lists, shows and removes the session a task ran in", async () => {
    const id = uniqueName("sess-task");
    const session = uniqueName("sess");
    expect(
      (await cli.run(["submit", script({ text: "hi" }), "--task-id", id, "--session", session])).code,
    ).toBe(0);

    const ls = await cli.run(["sessions", "ls", "--json"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(jsonLines<SessionState>(ls.stdout).map((s) => s.sessionName)).toContain(session);
    const show = await cli.run(["sessions", "show", session, "--json"]);
    expect(JSON.parse(show.stdout)).toMatchObject({ sessionName: session, lastTaskID: id, messageCount: 1 });
    const human = await cli.run(["sessions", "show", session]);
    expect(human.stdout).toMatch(new RegExp(`last task\\s+${id}`));

    const removed = await cli.run(["sessions", "rm", session]);
    expect(removed.stdout).toBe(`removed session ${session}\n`);
    const gone = await cli.run(["sessions", "show", session]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`error: session ${session}: not found (list them with sessions ls)\n`);
  });
});

describe("context", () => {
  it("sets, gets, lists and removes JSON and string values", async () => {
    const agent = uniqueName("agent");
    const setJson = await cli.run(["context", "set", agent, "plan", '{"steps":[1,2]}']);
    expect(setJson.code, setJson.stderr).toBe(0);
    expect(setJson.stdout).toBe(`set ${agent}.plan\n`);
    const setText = await cli.run(["context", "set", agent, "note", "plain words", "--ttl", "10m"]);
    expect(setText.stdout).toMatch(new RegExp(`set ${agent}\\.note \\(expires .+\\)`));

    const getJson = await cli.run(["context", "get", agent, "plan", "--json"]);
    expect(JSON.parse(getJson.stdout)).toMatchObject({
      agentID: agent,
      key: "plan",
      value: { steps: [1, 2] },
    });
    expect((await cli.run(["context", "get", agent, "note"])).stdout).toBe("plain words\n");
    const ls = await cli.run(["context", "ls", agent]);
    expect(ls.stdout).toMatch(/note\s+plain words/);
    expect(ls.stdout).toMatch(/plan\s+\{"steps":\[1,2\]\}/);

    expect((await cli.run(["context", "rm", agent, "plan"])).stdout).toBe(`removed ${agent}.plan\n`);
    const gone = await cli.run(["context", "get", agent, "plan"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe(`error: context ${agent}.plan: not found (or expired)\n`);
    const badTtl = await cli.run(["context", "set", agent, "x", "1", "--ttl", "soon"]);
    expect(badTtl.code).toBe(2);
    expect(linesOf(badTtl.stderr)).toEqual([expect.stringContaining("--ttl")]);
  });
});

describe("dlq", () => {
  it("lists a dead-lettered task and replays it to completion", async () => {
    const id = uniqueName("dead");
    const prompt = script(
      { fail: { message: "flaky provider", retryable: true }, times: 1 },
      { text: "fine now" },
    );
    const failed = await cli.run(["submit", prompt, "--task-id", id]);
    expect(failed.code, failed.stdout + failed.stderr).toBe(1);

    const ls = await cli.run(["dlq", "ls", "--json"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(jsonLines<DeadLetter>(ls.stdout).find((l) => l.taskID === id)).toMatchObject({
      attempts: 1,
      reason: expect.stringContaining("flaky provider"),
    });
    expect((await cli.run(["dlq", "ls"])).stdout).toMatch(new RegExp(`${id}\\s+1\\s+AGENT_ERROR`));

    const replay = await cli.run(["dlq", "replay", id]);
    expect(replay.code, replay.stderr).toBe(0);
    expect(replay.stdout).toBe(`replayed task ${id}; follow it with: station-coding watch ${id}\n`);
    const result = await cli.run(["result", id, "--wait", "--wait-timeout", "20s"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("fine now");
    const after = await cli.run(["dlq", "ls", "--json"]);
    expect(jsonLines<DeadLetter>(after.stdout).map((l) => l.taskID)).not.toContain(id);
  });

  it("shows that a task's inline git token was removed, and replays it with --git-token-env", async () => {
    const id = uniqueName("dead-private");
    await publishTask(env, {
      taskID: id,
      workspace: { git: { url: git.url("app"), token: GIT_TOKEN } },
      prompt: script({ fail: { message: "flaky provider", retryable: true }, times: 1 }, { text: "cloned" }),
    });
    expect((await waitResult(env, id)).status).toBe("error");
    const ls = await cli.run(["dlq", "ls"]);
    expect(ls.stdout).toMatch(new RegExp(`${id}\\s+1\\s+AGENT_ERROR\\s+\\S+\\s+\\[git token removed\\] `));
    expect(ls.stdout).not.toContain(GIT_TOKEN);
    expect((await cli.run(["dlq", "ls", "--json"])).stdout).not.toContain(GIT_TOKEN);

    const refused = await cli.run(["dlq", "replay", id]);
    expect(refused.code).toBe(1);
    expect(linesOf(refused.stderr)).toEqual([
      expect.stringContaining(`dead letter for task ${id}: the task carried an inline git token`),
    ]);
    const replay = await cli.run(["dlq", "replay", id, "--git-token-env", "REPLAY_GIT_TOKEN"], {
      env: { REPLAY_GIT_TOKEN: GIT_TOKEN },
    });
    expect(replay.code, replay.stderr).toBe(0);
    const result = await cli.run(["result", id, "--wait", "--wait-timeout", "20s"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain("cloned");
  });
});
