// The README's CLI block, run line by line by `sh` as written (only `<taskID>` is filled in) from
// the repository root, through `npx station-coding` (the bin npm links at install): against a test
// nats-server, with the worker's managed OpenCode pointed at the scripted model. The line that
// clones https://github.com/acme/api.git clones it, as written, from a git server on loopback: the
// test's git config rewrites the URL (url.<base>.insteadOf), so nothing leaves the machine.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskResult } from "@station-coding/protocol";
import {
  GitServer,
  NatsServer,
  ScriptedModelServer,
  createFileScenario,
  scriptedProviderConfig,
  tempDir,
  waitFor,
} from "@station-coding/testkit";
import { Child, REPO_ROOT, cleanEnv, repoFile, requireBuiltCli, runShell } from "./support/deploy.js";

let nats: NatsServer;
let model: ScriptedModelServer;
let gitServer: GitServer;
let dir: string;
let env: NodeJS.ProcessEnv;
let worker: Child | undefined;

/** Stops the worker's whole process group (npx, the shell it runs, the worker): SIGTERM, then SIGKILL. */
async function stopWorker(child: Child): Promise<void> {
  const group = -child.process.pid!;
  const alive = () => {
    try {
      process.kill(group, 0);
      return true;
    } catch {
      return false;
    }
  };
  if (!alive()) return;
  process.kill(group, "SIGTERM");
  await waitFor(() => !alive(), { timeout: 20_000, message: "the worker to stop" }).catch(() => {
    if (alive()) process.kill(group, "SIGKILL");
  });
  await child.exited.catch(() => undefined);
}

/** The lines of the README's ```sh block that starts with `npx station-coding init`. */
function readmeCliLines(): string[] {
  const readme = repoFile("README.md");
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.startsWith("npx station-coding init"));
  if (!block) throw new Error("README.md has no ```sh block starting with `npx station-coding init`");
  return block.split("\n").filter((line) => line.trim() !== "");
}

function line(lines: string[], start: string): string {
  const found = lines.find((l) => l.startsWith(start));
  if (!found) throw new Error(`README.md's CLI block has no line starting with ${JSON.stringify(start)}`);
  return found;
}

beforeAll(async () => {
  requireBuiltCli();
  if (!existsSync(join(REPO_ROOT, "node_modules/.bin/station-coding"))) {
    throw new Error("node_modules/.bin/station-coding is missing: run npm ci (it links the CLI's bin)");
  }
  dir = await tempDir("readme-cli");
  nats = await NatsServer.start();
  model = await ScriptedModelServer.start({ scenarios: [createFileScenario({ match: /[\s\S]*/ })] });
  // github.com/acme/api on loopback, readable without credentials like a public repository.
  gitServer = await GitServer.start({ token: "unused-token-for-public-repos", publicRepos: ["acme/api"] });
  await gitServer.createRepo("acme/api", { "README.md": "# api\n", "test/api.test.js": "// tests\n" });
  await mkdir(join(dir, "workspaces"));
  await mkdir(join(dir, "tmp"));
  // The test's git config sends https://github.com/ to the local server. The worker's git reads no
  // global config on purpose (a workspace must not steer it), so the worker finds a `git` on its
  // PATH that hands this file to the real git as its global config.
  const gitConfig = join(dir, "gitconfig");
  await writeFile(
    gitConfig,
    `[url "http://127.0.0.1:${gitServer.port}/"]\n\tinsteadOf = https://github.com/\n`,
  );
  const bin = join(dir, "bin");
  await mkdir(bin);
  const realGit = execFileSync("sh", ["-c", "command -v git"]).toString().trim();
  await writeFile(join(bin, "git"), `#!/bin/sh\nGIT_CONFIG_GLOBAL='${gitConfig}' exec '${realGit}' "$@"\n`);
  await chmod(join(bin, "git"), 0o755);
  const opencodeConfig = join(dir, "opencode.json");
  await writeFile(opencodeConfig, JSON.stringify(scriptedProviderConfig(model.url)));
  env = cleanEnv({
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    NATS_URL: nats.url,
    STATION_WORKSPACE_DIR: join(dir, "workspaces"),
    OPENCODE_CONFIG_FILE: opencodeConfig,
    // The rewritten URL is plain http on loopback.
    STATION_GIT_ALLOW_HTTP: "1",
    TMPDIR: join(dir, "tmp"),
  });
}, 60_000);

afterAll(async () => {
  if (worker) await stopWorker(worker);
  await gitServer?.stop();
  await model?.stop();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("README: the station-coding CLI block, run as written", () => {
  it("runs every line: init, a worker, submits, watch, result, cancel, status, sessions, dlq", async () => {
    const lines = readmeCliLines();
    const sh = (command: string, timeout = 60_000) => runShell(command, env, timeout);
    const ran: string[] = [];
    const run = async (command: string, timeout?: number) => {
      ran.push(command);
      return sh(command, timeout);
    };

    const init = await run(line(lines, "npx station-coding init"));
    expect(init.code, init.stderr).toBe(0);

    // The worker runs until stopped: start it in the background, as a shell user would with `&`.
    const workerLine = line(lines, "npx station-coding worker");
    ran.push(workerLine);
    // In a process group of its own, so that the test can stop npx and the worker under it.
    worker = new Child(spawn("sh", ["-c", `exec ${workerLine}`], { cwd: REPO_ROOT, env, detached: true }));
    await waitFor(
      async () => {
        if (worker!.process.exitCode !== null) return true;
        const status = await sh("npx station-coding status --json", 15_000);
        const parsed = JSON.parse(status.stdout || "{}") as { workers?: { state: string }[] };
        return parsed.workers?.[0]?.state === "running";
      },
      { timeout: 60_000, interval: 500, message: "the README's worker to be running" },
    );
    expect(worker.process.exitCode, worker.stderr).toBeNull();

    const submit = await run(line(lines, 'npx station-coding submit "add a README"'));
    expect(submit.code, submit.stdout + submit.stderr).toBe(0);
    const taskID = /^task (\S+) completed/m.exec(submit.stdout)?.[1];
    expect(taskID, submit.stdout).toBeDefined();

    // The clone of https://github.com/acme/api.git, as written, served by the local git server.
    const clone = await run(line(lines, 'npx station-coding submit "fix the tests" --git-url'), 90_000);
    expect(clone.code, clone.stdout + clone.stderr).toBe(0);
    // --json: one JSON line per event, then the result.
    const json = clone.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; content?: string });
    expect(json.filter((l) => l.type === "task_started")).toHaveLength(1);
    expect(json.find((l) => l.type === "git_clone")?.content).toBe("https://github.com/acme/api.git");
    const cloned = json.at(-1) as TaskResult & { type: string };
    expect(cloned, JSON.stringify(cloned)).toMatchObject({
      type: "result",
      status: "completed",
      workspace: { git: { branch: "main" } },
    });
    expect(existsSync(join(cloned.workspace.path, "test", "api.test.js"))).toBe(true);
    expect(gitServer.requests.some((r) => r.path.startsWith("/acme/api.git/") && r.status === 200)).toBe(
      true,
    );

    const withID = (command: string) => command.replaceAll("<taskID>", taskID!);
    const watch = await run(withID(line(lines, "npx station-coding watch <taskID>")));
    expect(watch.code, watch.stderr).toBe(0);
    expect(watch.stdout).toContain(`task ${taskID} completed`);
    const result = await run(withID(line(lines, "npx station-coding result <taskID> --wait")));
    expect(result.code, result.stderr).toBe(0);
    const cancel = await run(withID(line(lines, "npx station-coding cancel <taskID>")));
    expect(cancel.code, cancel.stderr).toBe(0);
    const status = await run(line(lines, "npx station-coding status"));
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("workers       1 alive, 0 dead");
    const sessions = await run(line(lines, "npx station-coding sessions ls"));
    expect(sessions.code, sessions.stderr).toBe(0);
    expect(sessions.stdout).toMatch(/^docs\s/m);
    const dlq = await run(line(lines, "npx station-coding dlq ls"));
    expect(dlq.code, dlq.stderr).toBe(0);

    // Every line of the block was run.
    expect(ran.map((c) => c.replaceAll(taskID!, "<taskID>"))).toEqual(lines);
  }, 240_000);
});
