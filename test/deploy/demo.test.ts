// `station-coding demo` (the built CLI, as `npm run demo` runs it): once on the NATS server named
// by NATS_URL, once with NATS_URL unreachable so that it starts its own nats-server. Both offline
// (no provider key: the scripted model), both must finish with a completed task and its diff, and
// leave nothing behind in their TMPDIR.
import { readdir, rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { NatsServer, tempDir } from "@station-coding/testkit";
import type { Exit } from "./support/deploy.js";
import { cleanEnv, freePorts, requireBuiltCli, runCli } from "./support/deploy.js";

const DEMO_TIMEOUT = 100_000;

beforeAll(() => requireBuiltCli());

/**
 * Runs the demo with `NATS_URL` and a TMPDIR of its own. Fails with its output unless it exits 0
 * and everything it made in that TMPDIR (sample repository, workspaces, OpenCode's data,
 * nats-server's store) is gone afterwards.
 */
async function runDemo(natsUrl: string): Promise<Exit> {
  const tmp = await tempDir("deploy-demo");
  try {
    const exit = await runCli(["demo"], cleanEnv({ NATS_URL: natsUrl, TMPDIR: tmp }), DEMO_TIMEOUT);
    const output = `${exit.stdout}\n${exit.stderr}`;
    if (/unknown command 'demo'/.test(output)) {
      throw new Error(
        "`demo` is not registered: add registerDemo(program, run) to packages/cli/src/program.ts",
      );
    }
    expect(exit.code, output).toBe(0);
    expect(await readdir(tmp), "left behind in TMPDIR").toEqual([]);
    return exit;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** What every successful demo prints: the offline model, live events, the result and the diff. */
function expectCompletedDemo(stdout: string): string {
  expect(stdout).toContain("no provider key found: using the scripted offline model");
  for (const type of ["task_started", "git_clone", "tool_start", "tool_end", "text"]) {
    expect(stdout).toMatch(new RegExp(`^\\s+\\d+ ${type}\\b`, "m"));
  }
  expect(stdout).toMatch(/^\s+\d+ tool_end\s+bash completed .*exit 0$/m);
  const taskID = /^task (demo-\S+) completed in \S+/m.exec(stdout)?.[1];
  expect(taskID, "a completed task").toBeDefined();
  expect(stdout).toMatch(/^ {2}tokens {5}\d+ \(/m);
  expect(stdout).toMatch(/^ {2}cost {7}\$\d/m);
  expect(stdout).toMatch(/^ {2}tool calls 4$/m);
  expect(stdout).toContain(`diff (output/${taskID}/changes.patch`);
  expect(stdout).toContain("diff --git a/src/greet.js b/src/greet.js");
  expect(stdout).toContain("+  return `Hello, ${name}!`;");
  expect(stdout).toContain("+++ b/test/greet.test.js");
  return taskID!;
}

// The two runs share nothing (NATS namespace, TMPDIR, ports): they run side by side.
describe.concurrent("station-coding demo", () => {
  let nats: NatsServer;
  beforeAll(async () => {
    nats = await NatsServer.start();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it("runs on the NATS server at NATS_URL, in org demo, and leaves the result there", async () => {
    const { stdout } = await runDemo(nats.url);
    expect(stdout).toContain(`${nats.url} (reachable; the demo works in org demo there)`);
    expect(stdout).toContain("to org.demo.coding.task");
    const taskID = expectCompletedDemo(stdout);
    await using dispatcher = await CodingDispatcher.connect({ servers: nats.url, org: "demo" });
    const result = await dispatcher.task(taskID).result({ timeout: 5_000 });
    expect(result.status).toBe("completed");
    expect(result.changes?.files.map((f) => f.path).sort()).toEqual(["src/greet.js", "test/greet.test.js"]);
    const status = await dispatcher.status();
    expect(status.workers.map((w) => w.state)).toEqual(["stopped"]);
  }, 120_000);

  it("starts its own nats-server when NATS_URL does not answer, and stops it", async () => {
    const [closed] = await freePorts(1);
    const { stdout } = await runDemo(`nats://127.0.0.1:${closed}`);
    expect(stdout).toContain(`nats://127.0.0.1:${closed} is not reachable`);
    const started = /started nats-server at (nats:\/\/\S+)/.exec(stdout)?.[1];
    expect(started).toBeDefined();
    expect(stdout).toContain("to station.coding.task");
    expectCompletedDemo(stdout);
    await expect(CodingDispatcher.connect({ servers: started! })).rejects.toThrow();
  }, 120_000);
});
