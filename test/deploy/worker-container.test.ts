// The worker container of docker-compose.yaml, run outside Docker: its command with its
// environment (NATS_URL pointing at a test nats-server, STATION_OFFLINE_MODEL_URL at the scripted
// model, which the worker uses since no provider key is set, as in the demo profile), judged by its compose healthcheck, fed a task the way the README shows
// with the nats CLI (a plain publish on station.coding.task, a subscription to the result), and
// stopped with SIGTERM as `docker stop` does.
import { readFileSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskResult, WorkerPresence } from "@station-coding/protocol";
import {
  NatsServer,
  ScriptedModelServer,
  createFileScenario,
  tempDir,
  uniqueName,
  waitFor,
} from "@station-coding/testkit";
import type { Child, ComposeService } from "./support/deploy.js";
import {
  cleanEnv,
  interpolate,
  loadCompose,
  requireBuiltCli,
  runCli,
  runShell,
  service,
  shellCommand,
  spawnCommand,
} from "./support/deploy.js";

let nats: NatsServer;
let model: ScriptedModelServer;
let nc: NatsConnection;
let dir: string;
let worker: Child;
let compose: ComposeService;

/** The worker container's environment, with its container paths and NATS host mapped to this machine. */
function workerEnv(modelUrl: string, workspaces: string): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(compose.environment ?? {})) {
    // The host that runs `docker compose up` sets none of the variables it interpolates.
    env[name] = interpolate(value, name, {});
  }
  expect(env.NATS_URL).toBe("nats://nats:4222");
  expect(env.STATION_WORKSPACE_DIR).toBe("/workspaces");
  expect(env.OPENCODE_CONFIG_FILE).toBeUndefined();
  expect(env.STATION_OFFLINE_MODEL_URL).toBe("http://model:8080/v1");
  return cleanEnv({
    ...env,
    // OpenCode's runtime leaves a native library in TMPDIR at every start: keep it in the test's dir.
    TMPDIR: join(dir, "tmp"),
    NATS_URL: nats.url,
    STATION_WORKSPACE_DIR: workspaces,
    STATION_OFFLINE_MODEL_URL: modelUrl,
  });
}

/** The compose healthcheck, run as Docker runs it: `sh -c` in the WORKDIR with the container's NATS_URL. */
async function healthcheck(): Promise<number | null> {
  const exit = await runShell(shellCommand(compose.healthcheck!), cleanEnv({ NATS_URL: nats.url }));
  return exit.code;
}

/** Presence records in the coding-workers bucket, as `station-coding status --json` reports them. */
async function workers(): Promise<WorkerPresence[]> {
  const exit = await runCli(["status", "--json"], cleanEnv({ NATS_URL: nats.url }));
  expect(exit.code, exit.stderr).toBe(0);
  return (JSON.parse(exit.stdout) as { workers: WorkerPresence[] }).workers;
}

/** Child processes of a process (Linux), to check that the worker's opencode goes with it. */
function childPids(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim();
  return text === "" ? [] : text.split(/\s+/).map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  requireBuiltCli();
  compose = service(loadCompose(), "worker");
  dir = await tempDir("deploy-worker");
  nats = await NatsServer.start();
  nc = await connect({ servers: nats.url });
  model = await ScriptedModelServer.start({ scenarios: [createFileScenario({ match: /[\s\S]*/ })] });
  await mkdir(join(dir, "workspaces"));
  await mkdir(join(dir, "tmp"));
  // Before any worker runs, the healthcheck fails.
  expect(await healthcheck()).not.toBe(0);
  worker = spawnCommand(compose.command!, workerEnv(model.url, join(dir, "workspaces")));
}, 60_000);

afterAll(async () => {
  await worker?.kill();
  await nc?.close();
  await model?.stop();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the compose worker service, outside Docker", () => {
  it("becomes healthy: the healthcheck finds it running in the coding-workers bucket", async () => {
    await waitFor(async () => (await healthcheck()) === 0 || worker.process.exitCode !== null, {
      timeout: 60_000,
      interval: 500,
      message: `the worker healthcheck to pass; worker output:\n${worker.stdout}\n${worker.stderr}`,
    });
    expect(worker.process.exitCode, worker.stderr).toBeNull();
    const [presence] = await workers();
    expect(presence).toMatchObject({ state: "running", pid: worker.process.pid, concurrency: 4 });
  }, 90_000);

  it("runs a task published on station.coding.task and publishes its result on station.coding.result.<taskID>", async () => {
    const taskID = uniqueName("t1");
    const results = nc.subscribe(`station.coding.result.${taskID}`, { max: 1 });
    // nats pub station.coding.task '{"taskID":"t1","prompt":"..."}'
    nc.publish("station.coding.task", JSON.stringify({ taskID, prompt: "create hello.txt" }));
    let result: TaskResult | undefined;
    const timer = setTimeout(() => results.unsubscribe(), 60_000);
    for await (const msg of results) result = msg.json<TaskResult>();
    clearTimeout(timer);
    expect(result, "a result within 60 s").toBeDefined();
    expect(result).toMatchObject({ taskID, status: "completed", result: "Created hello.txt." });
    expect(result!.workspace.path.startsWith(join(dir, "workspaces"))).toBe(true);
    expect(readFileSync(join(result!.workspace.path, "hello.txt"), "utf8")).toBe("hello\n");
  }, 90_000);

  it("stops cleanly on SIGTERM: exit 0, state stopped, opencode gone, healthcheck failing", async () => {
    const pid = worker.process.pid!;
    const children = childPids(pid);
    expect(children.length, "the worker runs opencode serve as a child").toBeGreaterThan(0);
    worker.process.kill("SIGTERM");
    const exit = await worker.wait(30_000);
    expect(exit.code, exit.stderr).toBe(0);
    expect(exit.stdout).toMatch(/"msg":"worker stopped"/);
    expect((await workers())[0]).toMatchObject({ state: "stopped" });
    expect(children.filter(alive)).toEqual([]);
    expect(await healthcheck()).not.toBe(0);
  }, 60_000);
});
