import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { PermissionDeniedError, codingNames } from "@station-coding/protocol";
import { CodingDispatcher } from "@station-coding/dispatcher";
import { CodingWorker } from "@station-coding/worker";
import { ScriptedDriver, script } from "../../packages/worker/test/support/harness.js";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { refused, startTenancy, subscribeRefused } from "./support/tenancy-env.js";

// Org A is acme, org B is globex. Every attempt of acme's users on globex must be refused by the
// server, at once, with a permission violation naming what was refused.
const A = codingNames({ org: "acme" });
const B = codingNames({ org: "globex" });

let env: TenancyEnv;
/** acme's dispatcher user, with acme's inbox prefix (as CodingDispatcher connects). */
let dispatcherA: NatsConnection;
/** acme's worker user, with the inbox prefix of a worker serving acme. */
let workerA: NatsConnection;

beforeAll(async () => {
  env = await startTenancy({ orgs: ["acme", "globex"] });
  dispatcherA = await env.connectAs("acme-dispatcher", A.inboxPrefix);
  workerA = await env.connectAs("acme-worker", "_INBOX_worker+acme");
  // Something of globex's to steal: a session, a context entry and an artifact, written by the admin.
  const kvm = new Kvm(env.admin);
  await (await kvm.open(B.kv.sessions)).put("feature", JSON.stringify({ secret: "globex session" }));
  await (await kvm.open(B.kv.state)).put("planner.goal", JSON.stringify({ secret: "globex context" }));
  await (
    await new Objm(env.admin).open(B.objectStore)
  ).putBlob({ name: "input/t1/brief.txt" }, new TextEncoder().encode("globex brief"));
});
afterAll(async () => {
  await env?.close();
});

async function messages(stream: string): Promise<number> {
  return (await (await jetstreamManager(env.admin)).streams.info(stream)).state.messages;
}

describe("isolation between orgs, enforced by nats-server", () => {
  it("org A cannot publish a task or a cancel for org B", async () => {
    const js = jetstream(dispatcherA);
    for (const user of [dispatcherA, workerA]) {
      const task = await refused(
        jetstream(user).publish(B.taskSubject, JSON.stringify({ taskID: "x", prompt: "x" })),
      );
      expect(task).toMatchObject({ operation: "publish", subject: "org.globex.coding.task" });
    }
    const cancel = await refused(js.publish(B.cancelSubject("t1"), JSON.stringify({ taskID: "t1" })));
    expect(cancel).toMatchObject({ operation: "publish", subject: "org.globex.coding.cancel.t1" });
    // Nor forge org B's results or events.
    expect(await refused(js.publish(B.resultSubject("t1"), "{}"))).toMatchObject({ operation: "publish" });
    expect(await refused(jetstream(workerA).publish(B.streamSubject("t1"), "{}"))).toMatchObject({
      operation: "publish",
    });
    expect(await messages(B.streams.tasks)).toBe(0);
    expect(await messages(B.streams.cancels)).toBe(0);

    // A dispatcher pointed at org B with org A's user fails at connect: B's inbox is not its own.
    const started = Date.now();
    await expect(
      CodingDispatcher.connect({
        servers: env.server.url,
        org: "globex",
        user: "acme-dispatcher",
        pass: env.passwords.get("acme-dispatcher") ?? "",
        ensureTopology: false,
      }),
    ).rejects.toBeInstanceOf(PermissionDeniedError);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("org A cannot subscribe to org B's events, results or tasks, nor to a wildcard across orgs", async () => {
    for (const nc of [dispatcherA, workerA]) {
      for (const subject of [
        "org.globex.coding.stream.*",
        "org.globex.coding.stream.t1",
        "org.globex.coding.result.*",
        "org.globex.coding.result.t1",
        "org.globex.coding.task",
        "org.globex.coding.cancel.*",
        "org.globex.coding.dlq.*",
        "org.*.coding.result.>",
        "org.*.coding.stream.*",
        "org.>",
        ">",
      ]) {
        expect(await subscribeRefused(nc, subject)).toMatchObject({ operation: "subscription", subject });
      }
    }
    // Nor read them from the streams: consumers, stored-message and direct gets are refused too.
    const js = jetstream(dispatcherA);
    const jsm = await jetstreamManager(dispatcherA);
    expect(
      await refused(
        js.consumers.get(B.streams.events, {
          filter_subjects: B.streamSubject("t1"),
          deliver_policy: DeliverPolicy.All,
        }),
      ),
    ).toMatchObject({ operation: "publish" });
    expect(
      await refused(jsm.streams.getMessage(B.streams.results, { last_by_subj: B.resultSubject("t1") })),
    ).toMatchObject({ subject: "$JS.API.STREAM.MSG.GET.CODING_RESULTS_globex" });
    expect(
      await refused(dispatcherA.request(`$JS.API.DIRECT.GET.${B.streams.results}.${B.resultSubject("t1")}`)),
    ).toMatchObject({ operation: "publish" });
    expect(await refused(jsm.streams.info(B.streams.events))).toMatchObject({
      subject: "$JS.API.STREAM.INFO.CODING_EVENTS_globex",
    });
    // Its own events consumer may only filter on its own subjects.
    expect(
      await refused(js.consumers.get(A.streams.events, { filter_subjects: "org.globex.coding.stream.t1" })),
    ).toMatchObject({ operation: "publish" });
  });

  it("org A cannot read or write org B's sessions or agent context", async () => {
    const jsm = await jetstreamManager(dispatcherA);
    for (const nc of [dispatcherA, workerA]) {
      for (const bucket of [B.kv.sessions, B.kv.state]) {
        // Opening a bucket is client-side only; every read and write on it is refused.
        const kv = await new Kvm(nc).open(bucket);
        expect(await refused(kv.get("feature"))).toMatchObject({
          subject: `$JS.API.STREAM.MSG.GET.KV_${bucket}`,
        });
        expect(await refused(kv.put("feature", "{}"))).toMatchObject({
          operation: "publish",
          subject: `$KV.${bucket}.feature`,
        });
        expect(
          await refused(nc.request(`$JS.API.DIRECT.GET.KV_${bucket}.$KV.${bucket}.feature`)),
        ).toMatchObject({ operation: "publish" });
        expect(await refused(kv.keys())).toMatchObject({ operation: "publish" });
        expect(await subscribeRefused(nc, `$KV.${bucket}.>`)).toMatchObject({ operation: "subscription" });
      }
    }
    expect(await refused(jsm.streams.info(`KV_${B.kv.sessions}`))).toMatchObject({
      subject: `$JS.API.STREAM.INFO.KV_${B.kv.sessions}`,
    });
    // The globex records are untouched.
    const sessions = await new Kvm(env.admin).open(B.kv.sessions);
    expect((await sessions.get("feature"))?.json()).toEqual({ secret: "globex session" });
  });

  it("org A cannot read or write org B's artifacts", async () => {
    const objm = new Objm(dispatcherA);
    expect(await refused(objm.open(B.objectStore))).toMatchObject({
      subject: `$JS.API.STREAM.INFO.OBJ_${B.objectStore}`,
    });
    const store = await objm.open(B.objectStore, false);
    expect(await refused(store.getBlob("input/t1/brief.txt"))).toMatchObject({ operation: "publish" });
    expect(
      await refused(store.putBlob({ name: "input/t1/evil.txt" }, new TextEncoder().encode("x"))),
    ).toMatchObject({ operation: "publish" });
    expect(await subscribeRefused(dispatcherA, `$O.${B.objectStore}.>`)).toMatchObject({
      operation: "subscription",
    });
    const admin = await new Objm(env.admin).open(B.objectStore);
    expect((await admin.list()).map((o) => o.name)).toEqual(["input/t1/brief.txt"]);
  });

  it("org A cannot see org B's replies", async () => {
    for (const nc of [dispatcherA, workerA]) {
      for (const subject of [
        "_INBOX.>",
        "_INBOX_globex.>",
        "_INBOX_worker+globex.>",
        "_INBOX_worker+acme+globex.>",
        "*.>",
      ]) {
        expect(await subscribeRefused(nc, subject)).toMatchObject({ operation: "subscription", subject });
      }
    }
    // Within an org, dispatcher and worker replies are apart too (the worker reads the git tokens).
    expect(await subscribeRefused(dispatcherA, "_INBOX_worker+acme.>")).toMatchObject({
      operation: "subscription",
    });
    expect(await subscribeRefused(workerA, "_INBOX_acme.>")).toMatchObject({ operation: "subscription" });
  });

  it("a worker for org A does not receive org B's tasks and cannot pull from org B's consumer", async () => {
    const driver = new ScriptedDriver();
    await env.worker("acme-worker", ["acme"], { driver });
    const globex = await env.dispatcher("globex");
    const acme = await env.dispatcher("acme");
    const theirs = await globex.submit({ taskID: "b1", prompt: script({ text: "globex only" }) });
    // Submitted after B's task: once it is done, acme's worker had B's task available all along.
    const ours = await acme.submit({ taskID: "a1", prompt: script({ text: "acme" }) });
    expect(await ours.result()).toMatchObject({ status: "completed", org: "acme" });
    expect(driver.calls.map((c) => c.taskID)).toEqual(["a1"]);
    const consumer = await (await jetstreamManager(env.admin)).consumers.info(B.streams.tasks, B.consumer);
    expect(consumer).toMatchObject({ num_pending: 1, num_ack_pending: 0, delivered: { consumer_seq: 0 } });

    // Pulling from B's consumer directly is refused, however it is asked for.
    const js = jetstream(workerA);
    expect(await refused(js.consumers.get(B.streams.tasks, B.consumer))).toMatchObject({
      subject: "$JS.API.CONSUMER.INFO.CODING_TASKS_globex.coding-workers",
    });
    expect(
      await refused(
        workerA.request(
          `$JS.API.CONSUMER.MSG.NEXT.${B.streams.tasks}.${B.consumer}`,
          JSON.stringify({ batch: 1 }),
        ),
      ),
    ).toMatchObject({ operation: "publish" });
    expect(
      await refused(
        (await jetstreamManager(workerA)).consumers.add(B.streams.tasks, {
          durable_name: "thief",
          filter_subject: B.taskSubject,
        }),
      ),
    ).toMatchObject({ operation: "publish" });

    // A worker started with A's user for org B fails fast instead of serving B.
    const started = Date.now();
    await expect(env.worker("acme-worker", ["globex"])).rejects.toThrow(/permission/i);
    expect(Date.now() - started).toBeLessThan(5_000);

    // B's own worker runs B's task.
    await env.worker("globex-worker", ["globex"]);
    expect(await theirs.result()).toMatchObject({
      status: "completed",
      org: "globex",
      result: "globex only",
    });
  });

  it("within an org, the dispatcher may only write git tokens and the worker only read them", async () => {
    const asDispatcher = await new Kvm(dispatcherA).open(A.kv.secrets);
    await asDispatcher.put("github", "ghp_acme");
    expect(await refused(asDispatcher.get("github"))).toMatchObject({ operation: "publish" });
    const asWorker = await new Kvm(workerA).open(A.kv.secrets);
    expect((await asWorker.get("github"))?.string()).toBe("ghp_acme");
    expect(await refused(asWorker.put("github", "other"))).toMatchObject({ operation: "publish" });
    // Nor does the dispatcher take tasks off its own org's queue: pulling is the worker's right.
    expect(
      await refused(dispatcherA.request(`$JS.API.CONSUMER.MSG.NEXT.${A.streams.tasks}.${A.consumer}`, "{}")),
    ).toMatchObject({ operation: "publish" });
  });

  it("org users cannot create, delete or list streams", async () => {
    const jsm = await jetstreamManager(dispatcherA);
    expect(
      await refused(jsm.streams.add({ name: "ACME_EXTRA", subjects: ["org.globex.coding.task"] })),
    ).toMatchObject({ subject: "$JS.API.STREAM.CREATE.ACME_EXTRA" });
    expect(await refused(jsm.streams.delete(A.streams.tasks))).toMatchObject({ operation: "publish" });
    expect(await refused(jsm.streams.names().next())).toMatchObject({ subject: "$JS.API.STREAM.NAMES" });
    const workerJsm = await jetstreamManager(workerA);
    expect(await refused(workerJsm.streams.purge(B.streams.tasks))).toMatchObject({ operation: "publish" });
    expect(await refused(workerJsm.consumers.delete(A.streams.tasks, A.consumer))).toMatchObject({
      operation: "publish",
    });
  });

  it("refuses the org users without the right password", async () => {
    await expect(
      CodingWorker.start({
        driver: new ScriptedDriver(),
        servers: env.server.url,
        orgs: ["acme"],
        user: "acme-worker",
        pass: "wrong",
      }),
    ).rejects.toThrow(/authorization/i);
  });
});
