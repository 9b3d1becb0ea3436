// Adding an org is a config reload, not a restart: `station-coding org add … --reload --init` while
// two orgs run tasks on a shared worker. No task is lost or run twice, no worker connection drops,
// and the new org runs a task at once.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskResult } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { cli, startTenancy } from "./support/tenancy-env.js";

const TASKS_PER_ORG = 16;
let env: TenancyEnv;

beforeAll(async () => {
  env = await startTenancy({ orgs: ["acme", "globex"] });
});
afterAll(async () => {
  await env?.close();
});

describe("station-coding org add while other orgs run tasks", () => {
  it("adds a third org with a reload: no restart, no task lost or repeated, no connection dropped", async () => {
    const driver = new ScriptedDriver();
    await env.worker(["acme", "globex"], { driver, concurrency: 4, perOrgConcurrency: 2 });
    const pidBefore = env.server.pid;
    const runs: Promise<TaskResult>[] = [];
    for (const org of ["acme", "globex"]) {
      const dispatcher = await env.dispatcher(org);
      for (let i = 0; i < TASKS_PER_ORG; i += 1) {
        const handle = await dispatcher.submit({
          taskID: `${org}-${i}`,
          // Long enough that the 32 tasks (4 at a time: at least 12 s) outlast the CLI's reload;
          // with 150 ms they could all finish before it, now that a task's own overhead is small.
          prompt: script({ sleep: 1_500 }, { text: `${org} ${i}` }),
        });
        runs.push(handle.result());
      }
    }
    await waitFor(() => driver.calls.length >= 4, { message: "both orgs' tasks to be running" });

    const added = await cli([
      "--nats-url",
      env.server.url,
      "org",
      "add",
      "initech",
      "--dir",
      env.store.dir,
      "--max-storage",
      "64M",
      "--reload",
      "--init",
    ]);
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(new RegExp(`config checked, nats-server \\(pid ${pidBefore}\\) reloading`));
    expect(added.stdout).toContain("topology ready (org initech)");
    // The reload happened while tasks of both orgs were still queued or running.
    const finishedAtReload = driver.calls.filter((c) => c.endedAt !== undefined).length;
    expect(finishedAtReload).toBeLessThan(2 * TASKS_PER_ORG);

    // The new org works at once: its own worker and dispatcher, from the files the tool wrote.
    const written = (await env.store.load())?.orgs.initech;
    if (!written) throw new Error("org add did not record initech");
    env.state.orgs.initech = written;
    const initechDriver = new ScriptedDriver();
    await env.worker(["initech"], { driver: initechDriver });
    const initech = await env.dispatcher("initech");
    const theirs = await initech.submit({ taskID: "i-1", prompt: script({ text: "initech works" }) });
    expect(await theirs.result()).toMatchObject({
      status: "completed",
      org: "initech",
      result: "initech works",
    });

    const results = await Promise.all(runs);
    expect(results.map((r) => r.status)).toEqual(results.map(() => "completed"));
    const ran = driver.calls.map((c) => c.taskID).sort();
    expect(ran).toEqual([...new Set(ran)]);
    expect(ran).toHaveLength(2 * TASKS_PER_ORG);
    // Same process, and no client connection dropped by the reload.
    expect(env.server.pid).toBe(pidBefore);
    expect(env.server.running).toBe(true);
    expect(env.server.log).toContain("Reloaded server configuration");
    expect(env.logs.filter((line) => /"status":"(disconnect|reconnect)"/.test(line))).toEqual([]);
    expect(env.logs.filter((line) => /permission/i.test(line))).toEqual([]);
  });
});
