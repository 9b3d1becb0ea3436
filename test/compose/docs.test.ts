// Every Compose command of the README and docs/operations.md, run as written (`sh -c <line>`, with
// `docker compose` handed to Compose v1.29 by the test's CLI plugin) in one project, in an order a
// user could follow, each judged by what the docs say it does. Only the image build's network and
// the host ports differ from what a user runs (override file, STATION_*_PORT variables), and the
// project has a name of its own. With the cluster lines up, the node that leads the task stream is
// SIGKILLed and the next task still completes.
import { spawn } from "node:child_process";
import { jetstreamManager } from "@nats-io/jetstream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, waitFor } from "@station-coding/testkit";
import { docLines } from "./support/doc-lines.js";
import type { Exit } from "./support/engine.js";
import { REPO_ROOT, run, runOk } from "./support/engine.js";
import { ComposeProject } from "./support/project.js";
import { Observer } from "./support/scripted.js";

const doc = docLines();
let project: ComposeProject;
let observer: Observer | undefined;
let cluster: Observer | undefined;
const ran = new Set<string>();
/** Volumes on the engine before the test, and every volume the project's containers mounted. */
let volumesAtStart: string[] = [];
const mountedEver = new Set<string>();

async function allVolumes(): Promise<string[]> {
  return (await runOk("docker", ["volume", "ls", "-q"])).stdout.split("\n").filter(Boolean);
}

async function trackVolumes(): Promise<void> {
  for (const v of (await project.resources()).volumes) mountedEver.add(v);
}

/** Runs the docs line whose command is `command` as written; fails unless it exits 0. */
async function line(command: string, timeout = 180_000): Promise<Exit> {
  const found = doc.find((l) => l.command === command);
  if (!found) {
    const files = [...new Set(doc.map((l) => l.file))].join(", ");
    throw new Error(`no Compose command ${JSON.stringify(command)} in ${files}`);
  }
  ran.add(command);
  await trackVolumes();
  const exit = await project.sh(found.line, timeout);
  expect(exit.code, `${found.file}: ${found.line}\n${exit.stdout}\n${exit.stderr}`).toBe(0);
  await trackVolumes();
  return exit;
}

/** Waits until `count` worker containers run, each with a live worker of `concurrency` slots. */
async function workersRunning(count: number, concurrency: number): Promise<void> {
  await waitFor(
    async () => {
      const hosts = (await project.containers("worker")).filter((c) => c.state === "running");
      const presence = (await observer!.dispatcher.status()).workers.filter(
        (w) => w.liveness === "alive" && w.state === "running",
      );
      const ok =
        hosts.length === count &&
        hosts.every((c) => presence.some((p) => p.hostname === c.hostname && p.concurrency === concurrency));
      if (!ok) {
        throw new Error(
          `containers ${hosts.map((c) => c.hostname).join(",")}; workers ${presence.map((p) => `${p.hostname}/${p.concurrency}`).join(",")}`,
        );
      }
      return true;
    },
    {
      timeout: 120_000,
      interval: 1_000,
      message: `${count} workers running with concurrency ${concurrency}`,
    },
  );
}

/** The ID of the task `station-coding submit` completed. */
function completedTask(exit: Exit): string {
  const taskID = /^task (\S+) completed/m.exec(exit.stdout)?.[1];
  expect(taskID, exit.stdout).toBeDefined();
  return taskID!;
}

beforeAll(async () => {
  volumesAtStart = await allVolumes();
  project = await ComposeProject.create({ name: uniqueName("sc-docs").toLowerCase() });
});

afterAll(async () => {
  await cluster?.close();
  await observer?.close();
  await project?.destroy();
  // Workspace volumes Compose left behind (see the last test), also when a test failed midway.
  const left = (await allVolumes()).filter((v) => !volumesAtStart.includes(v) && mountedEver.has(v));
  if (left.length > 0) await runOk("docker", ["volume", "rm", ...left]);
});

describe("the README's and docs/operations.md's Compose commands, as written", () => {
  it("README: `--profile demo up -d` brings NATS, a worker and the scripted model up healthy; `run --rm station submit` completes with no provider key", async () => {
    await line("docker compose --profile demo up -d");
    await project.waitHealthy({ nats: 1, worker: 1, model: 1 });
    const submit = await line('docker compose run --rm station submit "add a health endpoint"');
    completedTask(submit);
    expect(submit.stdout).toContain("model      scripted/demo-model");
    expect(submit.stdout).toContain("I wrote hello.txt and listed the workspace.");
    observer = await Observer.connect([project.natsUrl]);
  });

  it("operations.md: `up -d`, `ps` shows both healthy, `submit`, `status`, `logs -f worker`", async () => {
    await line("docker compose up -d");
    // Nothing was recreated: the stack was already up to date.
    expect((await project.containers()).filter((c) => c.state === "running")).toHaveLength(3);
    let ps: Exit | undefined;
    await waitFor(
      async () => {
        ps = await line("docker compose ps");
        const rows = ps.stdout.split("\n").filter((l) => /_(nats|worker)_\d/.test(l));
        return rows.length === 2 && rows.every((r) => r.includes("(healthy)"));
      },
      { timeout: 60_000, interval: 2_000, message: "`docker compose ps` showing nats and worker healthy" },
    );
    completedTask(await line('docker compose run --rm station submit "add a README"'));
    const status = await line("docker compose run --rm station status");
    expect(status.stdout).toMatch(/workers\s+1 alive, 0 dead/);

    // Follows until interrupted, as in a terminal: read until the worker's start line, then Ctrl-C.
    const found = doc.find((l) => l.command === "docker compose logs -f worker")!;
    ran.add(found.command);
    const logs = spawn("sh", ["-c", found.line], { cwd: REPO_ROOT, env: project.env(), detached: true });
    let out = "";
    logs.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise((resolve) => logs.on("close", resolve));
    try {
      await waitFor(() => out.includes('"msg":"worker running"'), {
        timeout: 30_000,
        interval: 200,
        message: "the worker's start line in `logs -f worker`",
      });
      expect(out).toMatch(/\{"level":30,"time":\d+,"pid":\d+,"hostname":"[0-9a-f]{12}"/);
    } finally {
      process.kill(-logs.pid!, "SIGINT");
      await exited;
    }
  });

  it("scaling: `--scale worker=3`, `STATION_CONCURRENCY=8 up -d`, `--scale worker=2`", async () => {
    await line("docker compose up -d --scale worker=3");
    await workersRunning(3, 4);
    await line("STATION_CONCURRENCY=8 docker compose up -d");
    const now = (await project.containers("worker")).filter((c) => c.state === "running").length;
    expect(now).toBeGreaterThanOrEqual(1);
    await workersRunning(now, 8);
    await line("docker compose up -d --scale worker=2");
    await workersRunning(2, 4);
  });

  it("backups and upgrades: workers go on through `stop nats` and `start nats`; `up -d nats` changes nothing", async () => {
    await line("docker compose stop nats");
    expect((await project.containers("nats")).map((c) => c.state)).toEqual(["exited"]);
    await line("docker compose start nats");
    await project.waitHealthy({ nats: 1 });
    await workersRunning(2, 4);
    completedTask(await line('docker compose run --rm station submit "add a health endpoint"'));
    const before = (await project.containers("nats"))[0]!.id;
    await line("docker compose up -d nats");
    expect((await project.containers("nats")).map((c) => c.id)).toEqual([before]);
  });

  it("cluster: three nodes, `init --replicas 3`, worker-cluster runs a task, and the next one after the task-stream leader is SIGKILLed; `kill -s SIGUSR2` puts a node in lame duck mode", async () => {
    await line("docker compose --profile cluster up -d nats-1 nats-2 nats-3");
    await project.waitHealthy({ "nats-1": 1, "nats-2": 1, "nats-3": 1 });
    const init = await line(
      "docker compose run --rm --no-deps -e NATS_URL=nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222 station init --replicas 3",
    );
    expect(init.stdout).toMatch(/CODING_TASKS/);
    await line("docker compose --profile cluster up -d worker-cluster");
    await project.waitHealthy({ "worker-cluster": 1 });

    const p = project.ports;
    cluster = await Observer.connect(
      [p.STATION_NATS_1_PORT, p.STATION_NATS_2_PORT, p.STATION_NATS_3_PORT].map(
        (port) => `nats://127.0.0.1:${port}`,
      ),
    );
    const first = await cluster.submit("create hello", uniqueName("cluster"));
    expect(await cluster.result(first)).toMatchObject({ status: "completed" });
    const jsm = await jetstreamManager(cluster.dispatcher.connection);
    const info = await jsm.streams.info("CODING_TASKS");
    expect(info.config.num_replicas).toBe(3);
    const leader = info.cluster?.leader;
    expect(leader, "the task stream's leader").toMatch(/^nats-[123]$/);
    await runOk("docker", ["kill", "--signal", "KILL", (await project.containers(leader))[0]!.id]);
    // Until the other two elect a leader the stream takes nothing: the submit fails at once (no
    // responders) and is tried again with the same taskID, as a client would.
    const second = uniqueName("failover");
    await waitFor(() => cluster!.submit("create hello", second), {
      timeout: 30_000,
      interval: 500,
      message: "the task stream accepting a task again",
    });
    expect(await cluster.result(second)).toMatchObject({ status: "completed" });
    expect(await cluster.distinctResults(second)).toHaveLength(1);
    expect((await jsm.streams.info("CODING_TASKS")).cluster?.leader).not.toBe(leader);

    // The killed node back, then the upgrade note's lame duck signal.
    await line("docker compose --profile cluster up -d nats-1 nats-2 nats-3");
    await project.waitHealthy({ "nats-1": 1, "nats-2": 1, "nats-3": 1 });
    await line("docker compose kill -s SIGUSR2 nats-1");
    const [node1] = await project.containers("nats-1");
    await waitFor(async () => /lame duck mode/i.test((await run("docker", ["logs", node1!.id])).stderr), {
      timeout: 20_000,
      interval: 500,
      message: "nats-1 logging lame duck mode",
    });
  });

  it("stopping: `stop worker` stops the workers cleanly; `--profile demo --profile cluster down` keeps the volumes; `down -v` removes the rest", async () => {
    await line("docker compose stop worker");
    expect((await project.containers("worker")).map((c) => c.state)).toEqual(["exited", "exited"]);
    const stopped = (await observer!.dispatcher.status()).workers.filter((w) => w.liveness === "alive");
    expect(stopped.map((w) => w.state)).not.toContain("running");
    await cluster!.close();
    cluster = undefined;
    await observer!.close();
    observer = undefined;

    const before = await project.resources();
    const anonymous = before.volumes.filter((v) => /^[0-9a-f]{64}$/.test(v));
    expect(anonymous.length, "the workers' workspace volumes").toBeGreaterThanOrEqual(3);
    await line("docker compose --profile demo --profile cluster down");
    const afterDown = await project.resources();
    expect(afterDown.containers).toEqual([]);
    expect(afterDown.networks).toEqual([]);
    expect(await project.existingVolumes(before.volumes)).toEqual(before.volumes);

    // Up again and `down -v`: the store goes, and so do the new workspace volumes.
    await line("docker compose --profile demo up -d");
    const again = await project.resources();
    await line("docker compose --profile demo --profile cluster down -v");
    expect(await project.resources()).toEqual({ containers: [], networks: [], volumes: [] });
    expect(await project.existingVolumes(again.volumes)).toEqual([]);
    // What stays, as the docs say: the workspace volumes of the containers the first `down` removed
    // and of those scaling down removed (Compose removes a container, not its anonymous volume),
    // all of them volumes the project's workers mounted, none with the project's label.
    const left = (await allVolumes()).filter((v) => !volumesAtStart.includes(v));
    expect(left).toEqual(expect.arrayContaining(anonymous));
    for (const v of left) expect(mountedEver.has(v) && /^[0-9a-f]{64}$/.test(v), v).toBe(true);
  });

  it("ran every Compose command of the README and docs/operations.md", () => {
    expect([...ran].sort()).toEqual([...new Set(doc.map((l) => l.command))].sort());
  });

  it("takes the project name from .env, with nothing set in the environment", async () => {
    const env = project.env();
    delete env.COMPOSE_PROJECT_NAME;
    const ps = await run("docker-compose", ["--verbose", "ps"], { env });
    expect(ps.code, ps.stderr).toBe(0);
    expect(ps.stderr).toContain("com.docker.compose.project=station-coding");
  });
});
