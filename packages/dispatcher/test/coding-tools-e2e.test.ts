import { existsSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { GitServer, git } from "@station-coding/testkit";
import type { Env } from "@station-coding/testkit/worker";
import { script, startEnv, startWorker } from "@station-coding/testkit/worker";

const TOKEN = "ghp_tooltesttokenvalue1234567890abcd";
let env: Env;
let server: GitServer;
let dispatcher: CodingDispatcher;

beforeEach(async () => {
  env = await startEnv();
  server = await GitServer.start({ token: TOKEN });
  await server.createRepo("app", { "README.md": "# app\n" });
  process.env.TOOLS_GIT_TOKEN = TOKEN;
  await startWorker(env, undefined, {
    git: {
      tokenEnv: "TOOLS_GIT_TOKEN",
      allowHttp: true,
      userName: "Station Bot",
      userEmail: "bot@example.com",
    },
  });
  dispatcher = await CodingDispatcher.connect({ connection: env.nc, ensureTopology: false });
});
afterEach(async () => {
  await dispatcher.close();
  await env.close();
  await server[Symbol.asyncDispose]();
  delete process.env.TOOLS_GIT_TOKEN;
});

describe("Station's coding tools against a real worker and a private git server", () => {
  it("opens a session on a repository, codes, commits and pushes without a model call, then closes it", async () => {
    const opened = await dispatcher.codingOpen({
      session: "feature",
      workspace: "app",
      git: { url: server.url("app"), branch: "main" },
      scope: "workflow",
      scopeID: "wf-1",
    });
    expect(opened.status, JSON.stringify(opened)).toBe("completed");
    expect(opened.workspace.git?.branch).toBe("main");

    const coded = await dispatcher.code({
      session: "feature",
      prompt: script({
        writeFile: { name: "health.ts", content: "export const ok = true;\nexport const v = 1;\n" },
      }),
    });
    const result = await coded.result({ timeout: "30s" });
    expect(result.status).toBe("completed");
    expect(result.changes?.files).toEqual([expect.objectContaining({ path: "health.ts", status: "added" })]);

    const commit = await dispatcher.commit({ session: "feature", message: "add a health module" });
    expect(commit.status, JSON.stringify(commit)).toBe("completed");
    expect(commit.commit).toMatchObject({
      filesChanged: 1,
      insertions: 2,
      deletions: 0,
      message: "add a health module",
    });
    expect(commit.commit?.hash).toMatch(/^[0-9a-f]{40}$/);

    const pushed = await dispatcher.push({ session: "feature" });
    expect(pushed.status, JSON.stringify(pushed)).toBe("completed");
    expect(pushed.push).toMatchObject({ remote: "origin", branch: "main", commit: commit.commit?.hash });

    // The private server has the commit, by the configured author.
    const check = await mkdtemp(join(tmpdir(), "verify-"));
    await git(check, "clone", "--quiet", `http://x:${TOKEN}@127.0.0.1:${server.port}/app.git`, "repo");
    const log = await git(join(check, "repo"), "log", "-1", "--format=%H %an <%ae> %s");
    expect(log.trim()).toBe(`${commit.commit?.hash} Station Bot <bot@example.com> add a health module`);

    const workspacePath = result.workspace.path;
    expect(existsSync(workspacePath)).toBe(true);
    const closed = await dispatcher.codingClose({ session: "feature" });
    expect(closed.status).toBe("completed");
    expect(existsSync(workspacePath)).toBe(false);
  }, 90_000);
});
