// A dead letter never keeps a task's inline git token; its replay takes the token again, from the
// secrets bucket or the caller, against a real worker cloning from a private git server.
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { GitServer } from "@station-coding/testkit";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv, until } from "./support/dispatcher-env.js";

const TOKEN = "ghp_deadlettertokenvalue1234567890ab";
let env: DispatcherEnv;
let git: GitServer;
let driver: ScriptedDriver;
let dispatcher: CodingDispatcher;

beforeEach(async () => {
  env = await startDispatcherEnv();
  git = await GitServer.start({ token: TOKEN });
  await git.createRepo("app", { "README.md": "# app\n" });
  driver = new ScriptedDriver();
  await startWorker(env, driver, { maxAttempts: 1, git: { allowHttp: true } });
  dispatcher = await env.connect();
});
afterEach(async () => {
  await env.close();
  await git[Symbol.asyncDispose]();
});

/** Fails retryably once (so the task is dead-lettered after its one attempt), then succeeds. */
const flaky = () =>
  script({ fail: { message: "provider overloaded", retryable: true }, times: 1 }, { text: "fine now" });

async function deadLetterOf(taskID: string) {
  return until(
    async () => (await dispatcher.deadLetters.list()).find((l) => l.taskID === taskID),
    `the dead letter of ${taskID}`,
  );
}

describe("dead letters of tasks with an inline git token", () => {
  it("keep the task without its token, and replay with the token from the secrets bucket", async () => {
    const handle = await dispatcher.submit({
      taskID: "private",
      workspace: { git: { url: git.url("app"), token: TOKEN } },
      prompt: flaky(),
    });
    expect((await handle.result()).status).toBe("error");
    const letter = await deadLetterOf("private");
    expect(letter.gitTokenRemoved).toBe(true);
    expect(JSON.parse(letter.payload)).toMatchObject({
      taskID: "private",
      workspace: { git: { url: git.url("app") } },
    });
    expect(letter.payload).not.toContain(TOKEN);
    const jsm = await jetstreamManager(env.nc);
    const stored = await jsm.streams.getMessage(env.names.streams.dlq, {
      last_by_subj: env.names.dlqSubject("private"),
    });
    expect(stored?.string()).not.toContain(TOKEN);

    // Without the token the replay is refused, and nothing changes.
    await expect(dispatcher.deadLetters.replay("private")).rejects.toThrow(
      "dead letter for task private: the task carried an inline git token (workspace.git.token), " +
        "which dead letters do not keep; replay it with tokenFromKV (a key in the secrets bucket) or a token",
    );
    await expect(
      dispatcher.deadLetters.replay("private", { tokenFromKV: "app-token", token: TOKEN }),
    ).rejects.toThrow("replay: give tokenFromKV or token, not both");
    await expect(dispatcher.deadLetters.replay("private", { tokenFromKV: "no/such key" })).rejects.toThrow(
      /^tokenFromKV/,
    );
    expect((await dispatcher.deadLetters.list()).map((l) => l.taskID)).toEqual(["private"]);
    expect(driver.calls).toHaveLength(1);

    const before = git.requests.filter((r) => r.authorized).length;
    await (await new Kvm(env.nc).open(env.names.kv.secrets)).put("app-token", TOKEN);
    await dispatcher.deadLetters.replay("private", { tokenFromKV: "app-token" });
    const replayed = await until(async () => {
      const result = await dispatcher
        .task("private")
        .result({ timeout: 100 })
        .catch(() => undefined);
      return result?.status === "completed" ? result : undefined;
    }, "the replay's result");
    expect(replayed.result).toBe("fine now");
    expect(driver.calls).toHaveLength(2);
    expect(git.requests.filter((r) => r.authorized).length).toBeGreaterThan(before);
    expect(await dispatcher.deadLetters.list()).toEqual([]);
  });

  it("replay with a token given by the caller, and refuse credentials for a task without a repository", async () => {
    await dispatcher.submit({
      taskID: "private-2",
      workspace: { git: { url: git.url("app"), token: TOKEN } },
      prompt: flaky(),
    });
    await dispatcher.submit({ taskID: "no-repo", prompt: flaky() });
    await deadLetterOf("private-2");
    const plain = await deadLetterOf("no-repo");
    expect(plain.gitTokenRemoved).toBeUndefined();

    await expect(dispatcher.deadLetters.replay("no-repo", { tokenFromKV: "app-token" })).rejects.toThrow(
      "dead letter for task no-repo: the task has no git repository (workspace.git) to give credentials to",
    );
    await dispatcher.deadLetters.replay("private-2", { token: TOKEN });
    await dispatcher.deadLetters.replay("no-repo");
    for (const taskID of ["private-2", "no-repo"]) {
      const result = await until(async () => {
        const r = await dispatcher
          .task(taskID)
          .result({ timeout: 100 })
          .catch(() => undefined);
        return r?.status === "completed" ? r : undefined;
      }, `the replay's result of ${taskID}`);
      expect(result.result).toBe("fine now");
    }
  });
});
