import { accessSync, constants } from "node:fs";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { tempDir } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import { publishTask, script, startEnv, startWorker, waitResult } from "@station-coding/testkit/worker";

// Per-task overhead (issue 20): every git process the worker starts for a task is counted by a
// logging `git` first on the worker's PATH, which runs the real one.

let env: Env;
let log: string;
beforeEach(async () => {
  env = await startEnv();
  const bin = await tempDir("git-log-bin");
  log = join(bin, "calls.log");
  const realGit = (process.env.PATH ?? "")
    .split(delimiter)
    .map((dir) => join(dir, "git"))
    .find((path) => {
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  if (!realGit) throw new Error("git not found on PATH");
  await writeFile(join(bin, "git"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec '${realGit}' "$@"\n`);
  await chmod(join(bin, "git"), 0o755);
  await writeFile(log, "");
  // The worker's git runner takes its environment (PATH included) when the worker starts.
  const path = process.env.PATH;
  process.env.PATH = `${bin}${delimiter}${path ?? ""}`;
  try {
    await startWorker(env);
  } finally {
    process.env.PATH = path;
  }
  // The worker made its workspace template at start (git init and commit, once per worker).
  expect((await calls()).map((line) => line.split(" ")[0])).toContain("init");
});
afterEach(async () => {
  await env.close();
});

/** The git commands started since the last call (their arguments after the runner's `-c` options). */
async function calls(): Promise<string[]> {
  const lines = (await readFile(log, "utf8")).split("\n").filter((line) => line !== "");
  await writeFile(log, "");
  return lines.map((line) => line.replace(/(-c \S+ )+/g, ""));
}

describe("git processes per task", () => {
  it("runs no git process for a no-op task in a new workspace, nor when that workspace is reused untouched", async () => {
    await publishTask(env, {
      taskID: "noop-1",
      prompt: script({ text: "nothing to do" }),
      session: { name: "s1" },
    });
    expect((await waitResult(env, "noop-1")).status).toBe("completed");
    const first = await calls();
    // The workspace comes from a template (no `git init`, no commit) and is still exactly that at the
    // end (nothing but the template's `.git`): its state is known without `git status`.
    expect(first).toEqual([]);

    await publishTask(env, {
      taskID: "noop-2",
      prompt: script({ text: "still nothing" }),
      session: { name: "s1" },
    });
    const second = await waitResult(env, "noop-2");
    expect(second.status).toBe("completed");
    expect(second.workspace.path).toBe((await waitResult(env, "noop-1")).workspace.path);
    // Reused, still the untouched template: known at the start and at the end without git.
    expect(await calls()).toEqual([]);

    await publishTask(env, {
      taskID: "writes-in-session",
      prompt: script({ writeFile: { name: "a.txt", content: "a\n" } }),
      session: { name: "s1" },
    });
    expect((await waitResult(env, "writes-in-session")).changes?.files).toEqual([
      expect.objectContaining({ path: "a.txt", status: "added" }),
    ]);
    await calls();
    await publishTask(env, {
      taskID: "noop-3",
      prompt: script({ text: "after a file" }),
      session: { name: "s1" },
    });
    expect((await waitResult(env, "noop-3")).status).toBe("completed");
    // A workspace with a file is no longer the template: git is asked for its state at the start and
    // at the end (then, the file being uncommitted, for the diff as before).
    expect((await calls()).filter((line) => line.startsWith("status "))).toHaveLength(2);
  });

  it("still collects the changes of a task that writes a file, with the patch", async () => {
    await publishTask(env, {
      taskID: "writes",
      prompt: script({ writeFile: { name: "hello.txt", content: "hello\n" } }, { text: "wrote it" }),
    });
    const result = await waitResult(env, "writes");
    expect(result.status).toBe("completed");
    expect(result.changes?.files).toEqual([expect.objectContaining({ path: "hello.txt", status: "added" })]);
    const commands = (await calls()).map((line) => line.split(" ")[0]);
    // State, then the changes: the temporary index, its tree, the two diffs and the patch.
    expect(commands).toEqual(["status", "add", "write-tree", "diff", "diff", "diff"]);
  });
});
