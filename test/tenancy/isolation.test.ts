// One NATS account per org: every way for org A (acme) to reach org B's (globex's) data, tried
// with A's users against the shipped tenancy config. Each attempt is refused by the server or has
// no effect on B, and each test shows the legitimate operation next to it succeeding.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { Msg, NatsConnection } from "@nats-io/transport-node";
import { codingNames } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { CodingWorker } from "@station-coding/worker";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { fails, refused, startTenancy, subscribeRefused } from "./support/tenancy-env.js";

const A = codingNames({ org: "acme" });
const B = codingNames({ org: "globex" });

let env: TenancyEnv;
/** acme's admin: every right inside acme's account, and so the strongest attacker org A has. */
let acmeAdmin: NatsConnection;
let acmeDispatcher: NatsConnection;
let acmeWorker: NatsConnection;
let globexAdmin: NatsConnection;

beforeAll(async () => {
  env = await startTenancy({ orgs: ["acme", "globex"] });
  acmeAdmin = await env.connectAs("acme", "admin");
  acmeDispatcher = await env.connectAs("acme", "dispatcher");
  acmeWorker = await env.connectAs("acme", "worker");
  globexAdmin = await env.connectAs("globex", "admin");
  // Something of each org's, under the same keys, to steal or to read legitimately.
  for (const [nc, names, org] of [
    [globexAdmin, B, "globex"],
    [acmeAdmin, A, "acme"],
  ] as const) {
    const kvm = new Kvm(nc);
    await (await kvm.open(names.kv.sessions)).put("feature", JSON.stringify({ secret: `${org} session` }));
    await (await kvm.open(names.kv.state)).put("planner.goal", JSON.stringify({ secret: `${org} context` }));
    await (await kvm.open(names.kv.secrets)).put("github", `ghp_${org}`);
    await (
      await new Objm(nc).open(names.objectStore)
    ).putBlob({ name: "input/t1/brief.txt" }, new TextEncoder().encode(`${org} brief`));
  }
});
afterAll(async () => {
  await env?.close();
});

/** Message counts of every stream of globex, read by globex's admin. */
async function globexCounts(): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(globexAdmin);
  const out: Record<string, number> = {};
  for await (const info of jsm.streams.list()) out[info.config.name] = info.state.messages;
  return out;
}

/** Collects what a subscription receives. */
function collect(nc: NatsConnection, subject: string): Msg[] {
  const got: Msg[] = [];
  nc.subscribe(subject, { callback: (err, msg) => void (err ? undefined : got.push(msg)) });
  return got;
}

describe("isolation between orgs: one NATS account each", () => {
  it("publishing on org B's subjects from org A stores nothing in B and reaches none of B's subscribers", async () => {
    const before = await globexCounts();
    const seenInB = collect(globexAdmin, "org.globex.>");
    await globexAdmin.flush();
    // The org's dispatcher and worker users may not even try: their allow lists name acme only.
    for (const [nc, subject] of [
      [acmeDispatcher, B.taskSubject],
      [acmeDispatcher, B.cancelSubject("t1")],
      [acmeWorker, B.resultSubject("t1")],
      [acmeWorker, B.streamSubject("t1")],
    ] as const) {
      expect(await refused(jetstream(nc).publish(subject, "{}"))).toMatchObject({
        operation: "publish",
        subject,
      });
    }
    // acme's admin may publish anything, but only inside acme's account: no stream of globex answers.
    for (const subject of [
      B.taskSubject,
      B.cancelSubject("t1"),
      B.resultSubject("t1"),
      B.streamSubject("t1"),
    ]) {
      acmeAdmin.publish(subject, JSON.stringify({ taskID: "t1", prompt: "forged", status: "completed" }));
      expect((await fails(jetstream(acmeAdmin).publish(subject, "{}", { timeout: 1_000 }))).message).toMatch(
        /no responders|not enabled|timeout/i,
      );
    }
    await acmeAdmin.flush();
    // The legitimate publish, next to it: acme's own task subject is stored by acme's stream.
    const ack = await jetstream(acmeDispatcher).publish(
      A.taskSubject,
      JSON.stringify({ taskID: "own", prompt: "x" }),
    );
    expect(ack.stream).toBe(A.streams.tasks);
    globexAdmin.publish("org.globex.coding.marker", "m");
    await waitFor(() => seenInB.some((m) => m.subject === "org.globex.coding.marker"), {
      message: "globex's marker",
    });
    expect(seenInB.map((m) => m.subject)).toEqual(["org.globex.coding.marker"]);
    expect(await globexCounts()).toEqual(before);
    await (await jetstreamManager(acmeAdmin)).streams.purge(A.streams.tasks);
  });

  it("subscriptions in org A, even on '>', never see org B's traffic while B runs a task", async () => {
    for (const subject of [
      "org.globex.coding.result.*",
      "org.*.coding.result.>",
      "org.>",
      ">",
      "_INBOX.>",
      "_INBOX_globex.>",
    ]) {
      expect(await subscribeRefused(acmeDispatcher, subject)).toMatchObject({
        operation: "subscription",
        subject,
      });
    }
    const everything = collect(acmeAdmin, ">");
    await acmeAdmin.flush();
    await env.worker(["globex"]);
    const globex = await env.dispatcher("globex");
    const theirs = await globex.submit({
      taskID: "b-secret",
      prompt: script({ text: "globex's confidential answer" }),
    });
    expect(await theirs.result()).toMatchObject({
      status: "completed",
      result: "globex's confidential answer",
    });
    // The legitimate traffic, next to it: acme's own publish reaches acme's '>' subscriber.
    acmeAdmin.publish("org.acme.coding.marker", "m");
    await waitFor(() => everything.some((m) => m.subject === "org.acme.coding.marker"), {
      message: "acme's marker",
    });
    const text = everything.map((m) => `${m.subject} ${new TextDecoder().decode(m.data)}`).join("\n");
    expect(text).not.toMatch(/globex/);
  });

  it("every JetStream API on org B's streams, buckets and object store fails from org A, and works on A's", async () => {
    const jsm = await jetstreamManager(acmeAdmin);
    const js = jetstream(acmeAdmin);
    const attempts: [string, () => Promise<unknown>][] = [
      ["stream info", () => jsm.streams.info(B.streams.results)],
      ["consumer info", () => jsm.consumers.info(B.streams.tasks, B.consumer)],
      [
        "consumer create",
        () => jsm.consumers.add(B.streams.tasks, { durable_name: "thief", ack_policy: AckPolicy.Explicit }),
      ],
      ["consumer get (pull)", () => js.consumers.get(B.streams.tasks, B.consumer)],
      [
        "stream create over B's subjects",
        () =>
          jsm.streams
            .add({ name: "THIEF", subjects: ["org.globex.coding.>"] })
            .then(() => jsm.streams.info("THIEF")),
      ],
      [
        "message get",
        () => jsm.streams.getMessage(B.streams.results, { last_by_subj: B.resultSubject("t1") }),
      ],
      [
        "direct get",
        () =>
          acmeAdmin.request(`$JS.API.DIRECT.GET.KV_${B.kv.sessions}.$KV.${B.kv.sessions}.feature`, "", {
            timeout: 1_000,
          }),
      ],
      ["kv get", async () => (await new Kvm(acmeAdmin).open(B.kv.sessions)).get("feature")],
      ["kv watch", async () => (await new Kvm(acmeAdmin).open(B.kv.state)).watch()],
      ["secrets get", async () => (await new Kvm(acmeAdmin).open(B.kv.secrets)).get("github")],
      [
        "object get",
        async () => (await new Objm(acmeAdmin).open(B.objectStore)).getBlob("input/t1/brief.txt"),
      ],
    ];
    for (const [what, attempt] of attempts) {
      const outcome = await attempt().then(
        (value: unknown) => ({ value }),
        (err: unknown) => ({ err }),
      );
      // A stream acme creates over org.globex.> subjects lives in acme's account: allowed, and empty.
      if (what.startsWith("stream create")) {
        expect(outcome, what).toHaveProperty("value.state.messages", 0);
        await jsm.streams.delete("THIEF");
        continue;
      }
      expect(outcome, what).toHaveProperty("err");
      expect(String((outcome as { err: unknown }).err), what).toMatch(/not found|no responders|timeout/i);
    }
    // The same reads on acme's own names succeed, and return acme's data, never globex's.
    expect((await jsm.streams.info(A.streams.results)).config.name).toBe(A.streams.results);
    expect((await (await new Kvm(acmeAdmin).open(A.kv.sessions)).get("feature"))?.json()).toEqual({
      secret: "acme session",
    });
    expect((await (await new Kvm(acmeAdmin).open(A.kv.secrets)).get("github"))?.string()).toBe("ghp_acme");
    const brief = await (await new Objm(acmeAdmin).open(A.objectStore)).getBlob("input/t1/brief.txt");
    expect(new TextDecoder().decode(brief ?? new Uint8Array())).toBe("acme brief");
    // globex's data is intact.
    expect((await (await new Kvm(globexAdmin).open(B.kv.sessions)).get("feature"))?.json()).toEqual({
      secret: "globex session",
    });
    expect(
      (await (await jetstreamManager(globexAdmin)).consumers.info(B.streams.tasks, B.consumer)).name,
    ).toBe(B.consumer);
  });

  it("a consumer of org A whose deliver subject names org B's subjects or inboxes delivers inside org A only", async () => {
    const forged = JSON.stringify({
      taskID: "t-forged",
      status: "completed",
      result: "forged by acme",
      session: { name: "s", opencodeID: "x", messageCount: 1 },
      workspace: { name: "w", path: "/" },
      metrics: { duration: 1, toolCalls: 0, streamEvents: 0 },
    });
    const kv = await new Kvm(acmeAdmin).open(A.kv.sessions);
    await kv.put("forged", forged);
    const before = await globexCounts();
    const targets = [
      B.resultSubject("t-forged"),
      B.taskSubject,
      B.cancelSubject("t-forged"),
      `$KV.${B.kv.secrets}.github`,
      `${B.inboxPrefix}.stolen`,
      "_INBOX.stolen",
      "_INBOX_worker+globex.stolen",
    ];
    const seenInB = collect(globexAdmin, ">");
    await globexAdmin.flush();
    const seenInA = targets.map((subject) => collect(acmeAdmin, subject));
    await acmeAdmin.flush();
    const jsm = await jetstreamManager(acmeAdmin);
    for (const [i, deliver] of targets.entries()) {
      // The server accepts the push consumer (deliver subjects are never checked, nats-server#8274)…
      await jsm.consumers.add(`KV_${A.kv.sessions}`, {
        name: `push-${i}`,
        deliver_subject: deliver,
        filter_subject: `$KV.${A.kv.sessions}.forged`,
        deliver_policy: DeliverPolicy.LastPerSubject,
        ack_policy: AckPolicy.None,
      });
    }
    // …and delivers the staged message on each subject, in acme's account: acme's own subscribers get it.
    await waitFor(() => seenInA.every((got) => got.length > 0), {
      message: "the push consumers' deliveries in acme",
    });
    expect(seenInA.map((got) => new TextDecoder().decode(got[0]?.data))).toEqual(targets.map(() => forged));
    globexAdmin.publish("org.globex.coding.marker", "m");
    await waitFor(() => seenInB.some((m) => m.subject === "org.globex.coding.marker"), {
      message: "globex's marker",
    });
    // Globex's own JetStream calls (and the server's audit advisories about them, which may arrive
    // late) are globex's traffic; anything else but the marker would have come from acme.
    const ownTraffic = ["$JS.API.", "$JS.EVENT.ADVISORY.API", "_INBOX"];
    expect(
      seenInB.map((m) => m.subject).filter((s) => !ownTraffic.some((prefix) => s.startsWith(prefix))),
    ).toEqual(["org.globex.coding.marker"]);
    expect(await globexCounts()).toEqual(before);
    expect((await (await new Kvm(globexAdmin).open(B.kv.secrets)).get("github"))?.string()).toBe(
      "ghp_globex",
    );
    for (const i of targets.keys()) await jsm.consumers.delete(`KV_${A.kv.sessions}`, `push-${i}`);
  });

  it("a worker with org A's credentials cannot serve org B; with its own org's it can", async () => {
    const started = Date.now();
    await expect(
      CodingWorker.start({
        driver: new ScriptedDriver(),
        servers: env.server.url,
        orgs: ["globex"],
        orgCreds: { globex: env.credsFile("acme", "worker") },
        ensureTopology: false,
      }),
    ).rejects.toThrow(/permission/i);
    expect(Date.now() - started).toBeLessThan(5_000);
    const own = await env.worker(["acme"]);
    expect(own.state).toBe("running");
    await own.stop();
  });

  it("within an org: the dispatcher writes but never reads git tokens, the worker reads but never writes them, the viewer writes nothing", async () => {
    const asDispatcher = await new Kvm(acmeDispatcher).open(A.kv.secrets);
    await asDispatcher.put("deploy", "ghp_from_dispatcher");
    expect(await refused(asDispatcher.get("deploy"))).toMatchObject({ operation: "publish" });
    const asWorker = await new Kvm(acmeWorker).open(A.kv.secrets);
    expect((await asWorker.get("deploy"))?.string()).toBe("ghp_from_dispatcher");
    expect(await refused(asWorker.put("deploy", "other"))).toMatchObject({ operation: "publish" });
    // Replies are apart too: the dispatcher cannot read the worker's (which carry the tokens).
    expect(await subscribeRefused(acmeDispatcher, "_INBOX_worker+acme.>")).toMatchObject({
      operation: "subscription",
    });
    expect(await subscribeRefused(acmeWorker, `${A.inboxPrefix}.>`)).toMatchObject({
      operation: "subscription",
    });
    // Pulling tasks is the worker's right; publishing tasks the dispatcher's.
    expect(
      await refused(
        acmeDispatcher.request(`$JS.API.CONSUMER.MSG.NEXT.${A.streams.tasks}.${A.consumer}`, "{}"),
      ),
    ).toMatchObject({ operation: "publish" });
    expect(await refused(jetstream(acmeWorker).publish(A.taskSubject, "{}"))).toMatchObject({
      operation: "publish",
    });
    const viewer = await env.connectAs("acme", "viewer");
    for (const subject of [
      A.taskSubject,
      A.cancelSubject("t1"),
      A.resultSubject("t1"),
      `$KV.${A.kv.sessions}.x`,
      `$KV.${A.kv.secrets}.x`,
    ]) {
      expect(await refused(jetstream(viewer).publish(subject, "{}"))).toMatchObject({
        operation: "publish",
        subject,
      });
    }
    expect(await refused((await new Kvm(viewer).open(A.kv.secrets)).get("github"))).toMatchObject({
      operation: "publish",
    });
    // What the viewer is for: reading.
    expect((await (await new Kvm(viewer).open(A.kv.sessions)).get("feature"))?.json()).toEqual({
      secret: "acme session",
    });
    const jsm = await jetstreamManager(acmeDispatcher);
    expect(await refused(jsm.streams.add({ name: "EXTRA", subjects: ["org.acme.extra"] }))).toMatchObject({
      subject: "$JS.API.STREAM.CREATE.EXTRA",
    });
    expect(await refused(jsm.streams.delete(A.streams.tasks))).toMatchObject({ operation: "publish" });
  });

  it("the operator account reads every org's status and usage, and can change nothing", async () => {
    const operator = await env.connectOperator();
    for (const [org, names] of [
      ["acme", A],
      ["globex", B],
    ] as const) {
      const prefix = `$JS.${org}.API`;
      const jsm = await jetstreamManager(operator, { apiPrefix: prefix, timeout: 2_000 });
      // The legitimate reads: queue, consumer, dead letters, presence keys and the account's usage.
      expect((await jsm.streams.info(names.streams.tasks)).config.name).toBe(names.streams.tasks);
      expect((await jsm.consumers.info(names.streams.tasks, names.consumer)).name).toBe(names.consumer);
      expect((await jsm.getAccountInfo()).limits.max_storage).toBeGreaterThan(0);
      // Everything else is not imported: no responder answers, or the operator's allow list refuses.
      const attempts: [string, () => Promise<unknown>][] = [
        ["delete a stream", () => jsm.streams.delete(names.streams.tasks)],
        ["purge a stream", () => jsm.streams.purge(names.streams.results)],
        ["create a stream", () => jsm.streams.add({ name: "X", subjects: ["x"] })],
        [
          "create a consumer",
          () => jsm.consumers.add(names.streams.tasks, { durable_name: "x", ack_policy: AckPolicy.Explicit }),
        ],
        ["delete the task consumer", () => jsm.consumers.delete(names.streams.tasks, names.consumer)],
        [
          "read a result",
          () => jsm.streams.getMessage(names.streams.results, { last_by_subj: names.resultSubject("t1") }),
        ],
        ["read a session", () => jsm.streams.info(`KV_${names.kv.sessions}`)],
        [
          "read a secret",
          () =>
            operator.request(
              `${prefix}.DIRECT.GET.KV_${names.kv.secrets}.$KV.${names.kv.secrets}.github`,
              "",
              { timeout: 1_000 },
            ),
        ],
        ["publish a task", () => jetstream(operator).publish(names.taskSubject, "{}", { timeout: 1_000 })],
        [
          "use its own JetStream",
          () => jetstreamManager(operator).then((own) => own.streams.delete(names.streams.tasks)),
        ],
      ];
      for (const [what, attempt] of attempts) {
        const err = await fails(attempt());
        expect(String(err), what).toMatch(/not enabled|no responders|timeout|permission/i);
      }
    }
    // Nothing changed: every stream and the task consumers are still there.
    for (const [nc, names] of [
      [acmeAdmin, A],
      [globexAdmin, B],
    ] as const) {
      const jsm = await jetstreamManager(nc);
      expect((await jsm.consumers.info(names.streams.tasks, names.consumer)).name).toBe(names.consumer);
      expect((await (await new Kvm(nc).open(names.kv.secrets)).get("github"))?.string()).toMatch(/^ghp_/);
    }
  });
});
