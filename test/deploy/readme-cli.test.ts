// The README's CLI block, run line by line by `sh` as written (only `<taskID>` is filled in) with
// `station-coding` on PATH: against a test nats-server, with the worker's managed OpenCode pointed
// at the scripted model. The line that clones from github.com runs too, offline: it must end with
// a clear error, not hang.
import { spawn } from "node:child_process";
import { chmod, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskResult } from "@station-coding/protocol";
import {
  NatsServer,
  ScriptedModelServer,
  createFileScenario,
  tempDir,
  waitFor,
} from "@station-coding/testkit";
import {
  CLI_ENTRY,
  Child,
  REPO_ROOT,
  cleanEnv,
  repoFile,
  requireBuiltCli,
  runShell,
} from "./support/deploy.js";
import { scriptedProviderConfig } from "../../packages/cli/src/demo/offline-model.js";

let nats: NatsServer;
let model: ScriptedModelServer;
let dir: string;
let env: NodeJS.ProcessEnv;
let worker: Child | undefined;

/** The lines of the README's ```sh block that starts with `station-coding init`. */
function readmeCliLines(): string[] {
  const readme = repoFile("README.md");
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const block = blocks.find((b) => b.startsWith("station-coding init"));
  if (!block) throw new Error("README.md has no ```sh block starting with `station-coding init`");
  return block.split("\n").filter((line) => line.trim() !== "");
}

function line(lines: string[], start: string): string {
  const found = lines.find((l) => l.startsWith(start));
  if (!found) throw new Error(`README.md's CLI block has no line starting with ${JSON.stringify(start)}`);
  return found;
}

beforeAll(async () => {
  requireBuiltCli();
  dir = await tempDir("readme-cli");
  nats = await NatsServer.start();
  model = await ScriptedModelServer.start({ scenarios: [createFileScenario({ match: /[\s\S]*/ })] });
  const bin = join(dir, "bin");
  await mkdir(bin);
  await mkdir(join(dir, "workspaces"));
  await mkdir(join(dir, "tmp"));
  // What `npm install -g @station-coding/cli` puts on PATH.
  await writeFile(
    join(bin, "station-coding"),
    `#!/bin/sh\nexec "${process.execPath}" "${join(REPO_ROOT, CLI_ENTRY)}" "$@"\n`,
  );
  await chmod(join(bin, "station-coding"), 0o755);
  const opencodeConfig = join(dir, "opencode.json");
  await writeFile(opencodeConfig, JSON.stringify(scriptedProviderConfig(model.url)));
  env = cleanEnv({
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    NATS_URL: nats.url,
    STATION_WORKSPACE_DIR: join(dir, "workspaces"),
    OPENCODE_CONFIG_FILE: opencodeConfig,
    TMPDIR: join(dir, "tmp"),
  });
}, 60_000);

afterAll(async () => {
  await worker?.kill();
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

    const init = await run(line(lines, "station-coding init"));
    expect(init.code, init.stderr).toBe(0);

    // The worker runs until stopped: start it in the background, as a shell user would with `&`.
    const workerLine = line(lines, "station-coding worker");
    ran.push(workerLine);
    worker = new Child(spawn("sh", ["-c", `exec ${workerLine}`], { cwd: REPO_ROOT, env }));
    await waitFor(
      async () => {
        if (worker!.process.exitCode !== null) return true;
        const status = await sh("station-coding status --json", 15_000);
        const parsed = JSON.parse(status.stdout || "{}") as { workers?: { state: string }[] };
        return parsed.workers?.[0]?.state === "running";
      },
      { timeout: 60_000, interval: 500, message: "the README's worker to be running" },
    );
    expect(worker.process.exitCode, worker.stderr).toBeNull();

    const submit = await run(line(lines, 'station-coding submit "add a README"'));
    expect(submit.code, submit.stdout + submit.stderr).toBe(0);
    const taskID = /^task (\S+) completed/m.exec(submit.stdout)?.[1];
    expect(taskID, submit.stdout).toBeDefined();

    // Offline, the clone from github.com fails: a clear, retried-then-final error, as JSON.
    const clone = await run(line(lines, 'station-coding submit "fix the tests" --git-url'), 90_000);
    expect(clone.code, clone.stderr).toBe(1);
    // --json: one JSON line per event, then the result.
    const json = clone.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string });
    expect(json.filter((l) => l.type === "task_started")).toHaveLength(3);
    const failed = json.at(-1) as TaskResult & { type: string };
    expect(failed).toMatchObject({ type: "result", status: "error", errorCode: "GIT_UNAVAILABLE" });
    expect(failed.error).toContain("github.com");

    const withID = (command: string) => command.replaceAll("<taskID>", taskID!);
    const watch = await run(withID(line(lines, "station-coding watch <taskID>")));
    expect(watch.code, watch.stderr).toBe(0);
    expect(watch.stdout).toContain(`task ${taskID} completed`);
    const result = await run(withID(line(lines, "station-coding result <taskID> --wait")));
    expect(result.code, result.stderr).toBe(0);
    const cancel = await run(withID(line(lines, "station-coding cancel <taskID>")));
    expect(cancel.code, cancel.stderr).toBe(0);
    const status = await run(line(lines, "station-coding status"));
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toContain("workers       1 alive, 0 dead");
    const sessions = await run(line(lines, "station-coding sessions ls"));
    expect(sessions.code, sessions.stderr).toBe(0);
    expect(sessions.stdout).toMatch(/^docs\s/m);
    const dlq = await run(line(lines, "station-coding dlq ls"));
    expect(dlq.code, dlq.stderr).toBe(0);

    // Every line of the block was run.
    expect(ran.map((c) => c.replaceAll(taskID!, "<taskID>"))).toEqual(lines);
  }, 240_000);
});
