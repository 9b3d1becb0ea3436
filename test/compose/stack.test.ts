// docker-compose.yaml's single-server stack on a real engine, as a user runs it: NATS, workers and
// the demo profile's scripted model (with the scenarios of these tests), the CLI image for `run`.
// A task's tools run in the agent's sandbox inside the worker container; a worker container killed
// with SIGKILL mid-task has its task finished once by another; `stop worker` drains; `down -v`
// leaves nothing of the project behind.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { uniqueName, waitFor } from "@station-coding/testkit";
import { runOk } from "./support/engine.js";
import { ComposeProject } from "./support/project.js";
import { CONFINED, Observer, SCENARIOS, SLOW_SECONDS, hostOf, scriptedModel } from "./support/scripted.js";

let project: ComposeProject;
let observer: Observer | undefined;

beforeAll(async () => {
  project = await ComposeProject.create({
    name: uniqueName("sc-stack").toLowerCase(),
    files: { "scenarios.json": JSON.stringify(SCENARIOS) },
    override: scriptedModel,
  });
});

afterAll(async () => {
  await observer?.close();
  await project?.destroy();
});

/** The task ID that `station-coding submit` printed. */
function submittedTask(stdout: string): string {
  const taskID = /^task (\S+) completed/m.exec(stdout)?.[1];
  if (!taskID) throw new Error(`no completed task in:\n${stdout}`);
  return taskID;
}

describe("docker-compose.yaml, one NATS server", () => {
  it("`--profile demo up -d --scale worker=3`: NATS, three workers and the scripted model come up healthy", async () => {
    await project.composeOk(["--profile", "demo", "up", "-d", "--scale", "worker=3"]);
    const up = await project.waitHealthy({ nats: 1, worker: 3, model: 1 });
    expect(up.map((c) => c.service).sort()).toEqual(["model", "nats", "worker", "worker", "worker"]);
    observer = await Observer.connect([project.natsUrl]);
  });

  it("`run --rm station submit` completes a task; its bash ran in the sandbox inside the worker container", async () => {
    const submit = await project.composeOk(["run", "--rm", "station", "submit", "sandbox check"]);
    const taskID = submittedTask(submit.stdout);
    expect(submit.stdout).toContain("model      scripted/demo-model");
    const result = await observer!.result(taskID);
    expect(result).toMatchObject({ status: "completed", result: "Checked." });
    // Absent unless the worker ran the agent unconfined.
    expect(result.sandbox).toBeUndefined();
    // The legitimate part: the tool wrote in its workspace.
    expect(result.changes?.files.map((f) => f.path).sort()).toEqual(["probe.sh", "sandbox.txt"]);
    const bash = (await observer!.events(taskID)).find(
      (e) => e.type === "tool_end" && e.tool?.name === "bash",
    );
    const output = bash?.tool?.output ?? "";
    for (const line of CONFINED) expect(output, output).toContain(line);
    // The worker itself, beside it, is not confined: it reaches NATS and runs under tini.
    const worker = (await project.containers("worker")).find((c) => c.hostname === hostOf(result.workerID));
    const pid1 = await runOk("docker", ["exec", worker!.id, "cat", "/proc/1/comm"]);
    expect(pid1.stdout.trim()).toBe("tini");
  });

  it("a worker container SIGKILLed mid-task has the task finished exactly once by another container", async () => {
    const workers = await project.waitHealthy({ worker: 3 });
    const taskID = await observer!.submit("a slow task", uniqueName("kill"));
    const started = await observer!.event(taskID, (e) => e.type === "tool_start" && e.tool?.name === "bash");
    const victim = workers.find((c) => c.hostname === hostOf(started.workerID));
    expect(victim, `the container of ${started.workerID}`).toBeDefined();
    await runOk("docker", ["kill", "--signal", "KILL", victim!.id]);

    const result = await observer!.result(taskID);
    expect(result.status).toBe("completed");
    expect(hostOf(result.workerID)).not.toBe(victim!.hostname);
    expect(workers.map((c) => c.hostname)).toContain(hostOf(result.workerID));
    expect(await observer!.distinctResults(taskID)).toHaveLength(1);
    const runs = (await observer!.events(taskID)).filter((e) => e.type === "task_started");
    expect(runs.length).toBeGreaterThanOrEqual(2);
    expect(runs[0]!.workerID).toBe(started.workerID);
    // The killed container stays down: docker kill counts as stopped by hand for `unless-stopped`.
    expect((await project.containers("worker")).find((c) => c.id === victim!.id)?.state).toBe("exited");
  });

  it("`stop worker` drains: a running task finishes, a queued one waits and completes after `start`", async () => {
    const running = await observer!.submit("a slow task", uniqueName("drain"));
    await observer!.event(running, (e) => e.type === "tool_start" && e.tool?.name === "bash");
    const stop = project.composeOk(["stop", "worker"]);
    // Submitted while the workers drain: none of them takes it any more.
    await waitFor(
      async () => (await observer!.dispatcher.status()).workers.some((w) => w.state === "draining"),
      { timeout: 20_000, interval: 200, message: "a worker draining" },
    );
    const queued = await observer!.submit("a queued task", uniqueName("queued"));
    await stop;
    const drained = await observer!.result(running, 5_000);
    expect(drained.status).toBe("completed");
    expect(drained.changes?.files.map((f) => f.path)).toEqual(["slept.txt"]);
    expect(drained.metrics?.duration).toBeGreaterThanOrEqual(SLOW_SECONDS * 1000);
    const status = await observer!.dispatcher.status();
    const working = status.workers.filter((w) => w.liveness === "alive" && w.state !== "stopped");
    expect(working, "workers still taking tasks").toEqual([]);
    await expect(observer!.result(queued, 1_000)).rejects.toThrow();

    await project.composeOk(["start", "worker"]);
    expect((await observer!.result(queued)).status).toBe("completed");
    expect(await observer!.distinctResults(running)).toHaveLength(1);
  });

  it("`--profile demo down -v` removes every container, network and volume of the project, the workspaces too", async () => {
    const before = await project.resources();
    expect(before.volumes.length, "the store and 3 workspace volumes").toBeGreaterThanOrEqual(4);
    await observer!.close();
    observer = undefined;
    await project.composeOk(["--profile", "demo", "down", "-v"]);
    expect(await project.resources()).toEqual({ containers: [], networks: [], volumes: [] });
    expect(await project.existingVolumes(before.volumes)).toEqual([]);
  });
});
