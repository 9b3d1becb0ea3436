import { readFile, realpath } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import type { StreamEvent } from "@station-coding/protocol";
import { TaskIndex, TaskIndexView, queuedRecord } from "@station-coding/protocol";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { fails, refused, startTenancy } from "./support/tenancy-env.js";

const ORGS = ["acme", "globex"] as const;

let env: TenancyEnv;
const drivers = { acme: new ScriptedDriver(), globex: new ScriptedDriver() };
const dispatchers = {} as Record<(typeof ORGS)[number], CodingDispatcher>;
beforeAll(async () => {
  env = await startTenancy({ orgs: [...ORGS] });
  for (const org of ORGS) {
    // Dedicated workers, each with its org's worker credentials; dispatchers as the org's dispatcher user.
    await env.worker([org], { driver: drivers[org], maxAttempts: 2 });
    dispatchers[org] = await env.dispatcher(org);
  }
});
afterAll(async () => {
  await env?.close();
});

async function collect(events: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

describe("two orgs side by side", () => {
  it("runs each org's task on its own worker, with its own session, workspace and artifacts", async () => {
    // The same task, session and workspace names in both orgs: nothing may collide.
    const runs = await Promise.all(
      ORGS.map(async (org) => {
        const dispatcher = dispatchers[org];
        await dispatcher.artifacts.stage("t1", "brief.txt", `brief of ${org}`);
        await dispatcher.context.set("planner", "goal", { org });
        const handle = await dispatcher.submit({
          taskID: "t1",
          prompt: script({ text: `hello from ${org}` }, { writeFile: { name: "out.txt", content: org } }),
          session: { name: "feature" },
          workspace: { name: "repo" },
          inputs: ["brief.txt"],
          snapshot: true,
        });
        const [events, result] = await Promise.all([collect(handle.events()), handle.result()]);
        return { org, dispatcher, events, result };
      }),
    );

    const base = await realpath(env.workspaceDir);
    for (const { org, dispatcher, events, result } of runs) {
      const other = org === "acme" ? "globex" : "acme";
      expect(result).toMatchObject({ status: "completed", org, result: `hello from ${org}` });
      expect(result.workspace.path).toBe(join(base, org, "repo"));
      expect(await readFile(join(base, org, "repo", "brief.txt"), "utf8")).toBe(`brief of ${org}`);
      expect(await readFile(join(base, org, "repo", "out.txt"), "utf8")).toBe(org);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.some((e) => e.type === "text" && e.content === `hello from ${org}`)).toBe(true);

      // Each task ran on its own org's worker.
      expect(drivers[org].calls.filter((c) => c.taskID === "t1")).toHaveLength(1);

      // Session records live in the org's bucket and point at the org's workspace.
      const session = await dispatcher.sessions.get("feature");
      expect(session).toMatchObject({ org, workspacePath: join(base, org, "repo"), lastTaskID: "t1" });
      expect(session?.opencodeID).toBe(drivers[org].calls[0]?.opencodeID);
      expect((await dispatcher.context.get("planner", "goal"))?.value).toEqual({ org });

      // Staged input, patch and snapshot are in the org's object store, under the same keys in both.
      const artifacts = await dispatcher.artifacts.list("t1");
      expect(artifacts.map((a) => a.bucket)).toEqual(artifacts.map(() => `coding-artifacts-${org}`));
      expect(artifacts.map((a) => a.kind).sort()).toEqual(["input", "patch"]);
      const input = artifacts.find((a) => a.kind === "input");
      expect(new TextDecoder().decode(await dispatcher.artifacts.get(input?.key ?? ""))).toBe(
        `brief of ${org}`,
      );
      expect(result.artifacts?.map((a) => [a.kind, a.bucket])).toEqual([
        ["patch", `coding-artifacts-${org}`],
        ["snapshot", `coding-artifacts-${org}`],
      ]);
      const patch = artifacts.find((a) => a.kind === "patch");
      expect(new TextDecoder().decode(await dispatcher.artifacts.get(patch?.key ?? ""))).toContain(org);

      // Status shows the org's own queue and workers only.
      const status = await dispatcher.status();
      expect(status.org).toBe(org);
      expect(status.tasks.stream).toBe(`CODING_TASKS_${org}`);
      expect(status.workers.map((w) => w.orgs)).toEqual([[org]]);
      expect(JSON.stringify(status)).not.toContain(other);
    }

    // One result per org, each in the org's own results stream, signed by the org's worker key.
    for (const org of ORGS) {
      const jsm = await jetstreamManager(await env.connectAs(org, "admin"));
      expect((await jsm.streams.info(`CODING_RESULTS_${org}`)).state.messages).toBe(1);
      expect((await jsm.streams.info(`CODING_TASKS_${org}`)).state.messages).toBe(0);
      const stored = await jsm.streams.getMessage(`CODING_RESULTS_${org}`, {
        last_by_subj: `org.${org}.coding.result.t1`,
      });
      expect(stored?.header?.get("Station-Result-Signer")).toBe(env.publicKey(org, "worker"));
    }
    // The normal path needs no right the generated users lack.
    expect(env.logs.filter((line) => /permission/i.test(line))).toEqual([]);
  });

  it("cancels, dead-letters and replays an org's tasks with the org's own users", async () => {
    const acme = dispatchers.acme;
    const long = await acme.submit({ taskID: "long", prompt: script({ sleep: 30_000 }) });
    await waitFor(() => drivers.acme.calls.some((c) => c.taskID === "long"), {
      message: "task long to start",
    });
    await acme.cancel("long", "not needed");
    expect(await long.result()).toMatchObject({ status: "cancelled", org: "acme" });

    const flaky = await acme.submit({
      taskID: "flaky",
      prompt: script(
        { fail: { message: "provider overloaded", retryable: true }, times: 2 },
        { text: "fine now" },
      ),
    });
    expect(await flaky.result()).toMatchObject({ status: "error", org: "acme" });
    const letters = await waitFor(
      async () => {
        const list = await acme.deadLetters.list();
        return list.length > 0 && list;
      },
      { message: "acme's dead letter" },
    );
    expect(letters).toMatchObject([{ taskID: "flaky", org: "acme", subject: "org.acme.coding.task" }]);
    expect(await dispatchers.globex.deadLetters.list()).toEqual([]);
    expect((await dispatchers.globex.status()).deadLetters).toBe(0);

    await acme.deadLetters.replay("flaky");
    const replayed = await waitFor(
      async () => {
        const result = await acme
          .task("flaky")
          .result({ timeout: 100 })
          .catch(() => undefined);
        return result?.status === "completed" && result;
      },
      { message: "the replay's result" },
    );
    expect(replayed).toMatchObject({ org: "acme", result: "fine now" });
    // The task index followed each transition with the org's own users, the replay as generation 1.
    const index = new TaskIndex(acme.connection, acme.names);
    await waitFor(async () => (await index.get("flaky"))?.value.status === "completed", {
      message: "the replay's completed record in acme's task index",
    });
    expect((await index.get("flaky"))?.value).toMatchObject({ generation: 1, worker: expect.any(String) });
    expect((await index.get("long"))?.value).toMatchObject({ status: "cancelled" });
    expect(await acme.deadLetters.list()).toEqual([]);
    expect(drivers.globex.calls.map((c) => c.taskID)).not.toContain("flaky");
    expect(env.logs.filter((line) => /permission/i.test(line))).toEqual([]);
  });

  it("keeps each org's task index apart: the viewer watches its own, writes nothing, and never sees another org's", async () => {
    await (
      await dispatchers.globex.submit({ taskID: "g-only", prompt: script({ text: "globex" }) })
    ).result();
    await (await dispatchers.acme.submit({ taskID: "a-only", prompt: script({ text: "acme" }) })).result();
    const viewer = await env.connectAs("acme", "viewer");
    const acmeIndex = new TaskIndex(viewer, dispatchers.acme.names);
    const view = await TaskIndexView.start(acmeIndex);
    try {
      await waitFor(() => view.get("a-only")?.status === "completed", {
        message: "acme's record in the view",
      });
      expect(view.get("g-only")).toBeUndefined();
      expect(view.list({ limit: 1000 }).items.every((r) => !r.taskID.startsWith("g-"))).toBe(true);
      expect(await refused(acmeIndex.update(queuedRecord({ taskID: "forged", prompt: "x" })))).toMatchObject({
        operation: "publish",
      });
    } finally {
      await view.stop();
    }
    // The org's users may not even name globex's bucket.
    const globexIndex = new TaskIndex(viewer, dispatchers.globex.names);
    expect(String(await fails(globexIndex.get("g-only")))).toMatch(/not found|permission|timeout/i);
    const asDispatcher = new TaskIndex(await env.connectAs("acme", "dispatcher"), dispatchers.globex.names);
    expect(String(await fails(asDispatcher.update(queuedRecord({ taskID: "g-only" }))))).toMatch(
      /not found|permission|timeout/i,
    );
    expect(
      (await new TaskIndex(dispatchers.globex.connection, dispatchers.globex.names).get("g-only"))?.value,
    ).toMatchObject({
      status: "completed",
    });
  });
});
