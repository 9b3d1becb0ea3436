import { readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { connect as connectSocket } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import { connect, headers } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { TaskResult } from "@station-coding/protocol";
import { codingNames, credentialsAuthenticator, ensureTopology } from "@station-coding/protocol";
import { NatsServer, tempDir, waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script } from "../../packages/worker/test/support/scripted-driver.js";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import type { HostileCase } from "./support/hostile-cases.js";
import { hostileCases } from "./support/hostile-cases.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow } from "./support/scenario-row.js";
import type { OrgRole } from "../../packages/cli/src/tenancy/permissions.js";
import { TenancyStore } from "../../packages/cli/src/tenancy/tenancy-store.js";

const MAX_PAYLOAD = 8 * 1024 * 1024;

let env: Env;
beforeAll(async () => {
  // Like the tenancy config: messages up to 8 MB, the task stream's own limit 1 MiB.
  env = await startEnv({ serverConfig: `max_payload: ${MAX_PAYLOAD}` });
});
afterAll(async () => {
  await env?.close();
});

/** Publishes raw bytes with a core request: the reply is the stream's PubAck, or its refusal. */
async function send(nc: NatsConnection, subject: string, payload: string | Uint8Array, msgID?: string) {
  const h = headers();
  if (msgID) h.set("Nats-Msg-Id", msgID);
  try {
    const reply = await nc.request(subject, payload, { timeout: 5_000, ...(msgID ? { headers: h } : {}) });
    return reply.json<{ seq?: number; duplicate?: boolean; error?: { description: string } }>();
  } catch (err) {
    return { error: { description: err instanceof Error ? err.message : String(err) } };
  }
}

/** Sends a PUB larger than the server's max_payload over a raw socket and returns the server's answer. */
async function rawOversizePublish(url: string, subject: string, size: number): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connectSocket(Number(port), hostname);
    let answer = "";
    let sent = false;
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(done, 5_000);
    socket.on("data", (chunk: Buffer) => {
      answer += chunk.toString();
      if (!sent && answer.startsWith("INFO")) {
        sent = true;
        // The server judges the size from the PUB line and answers before any body arrives.
        socket.write(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB ${subject} ${size}\r\n`);
      }
      if (answer.includes("-ERR")) done();
    });
    // The server closes the connection while the body is still being written (EPIPE): expected.
    socket.on("error", () => undefined);
    socket.on("close", done);
  });
}

function forgedResult(taskID: string): string {
  return JSON.stringify({
    taskID,
    status: "completed",
    result: "forged by an attacker",
    session: { name: taskID, opencodeID: "", messageCount: 0 },
    workspace: { name: taskID, path: "" },
    metrics: { duration: 0, toolCalls: 0, streamEvents: 0 },
    workerID: "attacker",
  } satisfies TaskResult);
}

/**
 * Under the tenancy accounts (deploy/nats/tenancy, written by `station-coding org add`), can an
 * org's dispatcher user forge a result? Returns what happened to the attempt.
 */
async function forgeUnderTenancy(): Promise<{ dispatcherForge: string; workerPublish: string }> {
  const dir = await tempDir("rel-tenancy");
  const store = new TenancyStore(dir);
  const { state } = await store.loadOrInit();
  state.orgs.acme = (await store.createOrg("acme", {})).record;
  await store.save(state);
  const server = await NatsServer.start({ config: await readFile(join(dir, "accounts.conf"), "utf8") });
  const as = async (role: OrgRole, inboxPrefix: string) =>
    connect({
      servers: server.url,
      authenticator: credentialsAuthenticator(await readFile(store.credsFile("acme", role))),
      inboxPrefix,
    });
  try {
    const admin = await as("admin", "_INBOX");
    const names = codingNames({ org: "acme" });
    await ensureTopology(admin, names);
    const dispatcher = await as("dispatcher", names.inboxPrefix);
    const worker = await as("worker", "_INBOX_worker+acme");
    const forged = await send(dispatcher, names.resultSubject("victim"), forgedResult("victim"));
    const real = await send(worker, names.resultSubject("other"), forgedResult("other"));
    const jsm = await jetstreamManager(admin);
    const stored = (await jsm.streams.info(names.streams.results)).state.messages;
    await Promise.all([admin, dispatcher, worker].map((nc) => nc.close()));
    return {
      dispatcherForge: forged.error ? `refused (${forged.error.description.slice(0, 60)})` : `accepted`,
      workerPublish: real.error ? "refused" : `accepted (${stored} stored)`,
    };
  } finally {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

describe("6 hostile input", () => {
  it("answers hostile messages with clear errors or refusals; workers stay up and other tasks are unaffected", async (context) => {
    const started = Date.now();
    const driver = new ScriptedDriver();
    await env.startWorker({}, driver);
    await env.startWorker({}, driver);
    const { nc, names } = env;
    const subject = (s = "task") => `station.coding.${s}`;
    const good = Array.from({ length: 10 }, (_, i) => `good-${i}`);
    const goodTask = (taskID: string) =>
      JSON.stringify({ taskID, prompt: script({ text: `fine ${taskID}` }) });
    const verdicts: { name: string; ok: boolean; detail: string }[] = [];
    const judge = (name: string, ok: boolean, detail: string) => verdicts.push({ name, ok, detail });

    // Staged inputs: a good one, and objects with hostile names the worker must never pick up.
    const store = await new Objm(nc).open(names.objectStore);
    await store.putBlob({ name: "input/h-inputs-ok/notes.txt" }, new TextEncoder().encode("staged notes"));
    await store.putBlob({ name: "input/h-inputs-ok/../../escaped.txt" }, new TextEncoder().encode("x"));
    await store.putBlob({ name: "input/h-inputs-ok/.git/config" }, new TextEncoder().encode("x"));

    // A forged result published before its task (single tenant, no permissions).
    await send(nc, subject("result.h-victim"), forgedResult("h-victim"));
    // A result message that is not even JSON, before its task, and before an invalid task.
    await send(nc, subject("result.h-junk-result"), "{not a result");
    await send(nc, subject("result.h-junk-invalid"), "{not a result");
    // A cancel that is not a cancel request, before its task.
    await send(nc, subject("cancel.h-junk-cancel"), "\u0000 not a cancel");

    const cases: HostileCase[] = hostileCases();
    const acks = new Map<string, Awaited<ReturnType<typeof send>>>();
    let goodIndex = 0;
    for (const [i, c] of cases.entries()) {
      acks.set(c.name, await send(nc, subject(c.subject), c.payload));
      // Good tasks between the hostile ones: they must not notice.
      if (i % 7 === 0 && goodIndex < good.length) {
        const taskID = good[goodIndex++]!;
        await send(nc, subject(), goodTask(taskID), taskID);
      }
    }
    while (goodIndex < good.length) {
      const taskID = good[goodIndex++]!;
      await send(nc, subject(), goodTask(taskID), taskID);
    }
    // The victims of the forged and junk messages, staged inputs, a missing input, duplicate taskIDs.
    const sendTask = (t: Record<string, unknown>) => send(nc, subject(), JSON.stringify(t));
    const work = script({ text: "real work" });
    await sendTask({ taskID: "h-victim", prompt: work });
    await sendTask({ taskID: "h-junk-result", prompt: work });
    await sendTask({ taskID: "h-junk-invalid", prompt: 42 });
    await sendTask({ taskID: "h-junk-cancel", prompt: work });
    await sendTask({ taskID: "h-inputs-ok", prompt: work, inputs: ["notes.txt"] });
    await sendTask({ taskID: "h-inputs-missing", prompt: work, inputs: ["missing.txt"] });
    await sendTask({ taskID: "h-dup", prompt: script({ text: "first" }, { sleep: 300 }) });
    await sendTask({ taskID: "h-dup", prompt: script({ text: "second" }) });
    const dupA = await send(nc, subject(), goodTask("h-dup-msgid"), "h-dup-msgid");
    const dupB = await send(nc, subject(), goodTask("h-dup-msgid"), "h-dup-msgid");

    // Over the stream's max_msg_size (1 MiB) but under max_payload: the stream refuses it.
    const overStream = await send(nc, subject(), task2MB());
    // Over the server's max_payload: the server refuses the PUB and closes that connection.
    const overServer = await rawOversizePublish(env.servers[0]!, subject(), MAX_PAYLOAD + 1024);

    const resultIDs = [
      ...good,
      ...cases.flatMap((c) =>
        c.expect.kind === "error" || c.expect.kind === "completed" ? [c.expect.taskID] : [],
      ),
      "h-inputs-ok",
      "h-inputs-missing",
      "h-dup",
      "h-dup-msgid",
      "h-junk-result",
      "h-junk-invalid",
      "h-junk-cancel",
      "h-victim",
    ];
    await waitForResults(env, resultIDs, 60_000);
    // The queue drains: every hostile message was answered and removed (none is redelivered forever).
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(names.streams.tasks)).state.messages === 0, {
      timeout: 20_000,
      message: "the task queue to drain",
    });

    // Resubmitting a finished task (no Nats-Msg-Id): dropped, not run again.
    await send(nc, subject(), goodTask("good-0"));
    // A good task after everything: the workers still serve.
    await send(nc, subject(), goodTask("after-hostile"), "after-hostile");
    await waitForResults(env, ["after-hostile"], 20_000);
    await waitFor(async () => (await jsm.streams.info(names.streams.tasks)).state.messages === 0, {
      timeout: 20_000,
      message: "the resubmitted task to be dropped",
    });

    const runnable = new Set([
      "h-ctl-prompt",
      "h-proto",
      "h-dup",
      "h-dup-msgid",
      "h-inputs-ok",
      "h-junk-result",
      "h-junk-cancel",
      "h-victim",
    ]);
    const acc = await account(env, [...resultIDs, "after-hostile"], {
      expected: (id) =>
        id.startsWith("good-") || id === "after-hostile" || runnable.has(id) ? "completed" : "error",
      // The results the scenario forged itself are not duplicates.
      forged: (seen) => seen.result?.workerID === "attacker" || seen.result === undefined,
    });
    const runs = (taskID: string) => driver.calls.filter((c) => c.taskID === taskID).length;

    for (const c of cases) {
      const ack = acks.get(c.name);
      const e = c.expect;
      switch (e.kind) {
        case "error": {
          const r = acc.results.get(e.taskID);
          const okResult =
            r?.status === "error" && r.errorCode === e.code && (r.error ?? "").includes(e.field);
          judge(
            c.name,
            okResult && runs(e.taskID) === 0 && env.wiretap.resultCount(e.taskID) === 1,
            `${r?.errorCode}: ${r?.error?.slice(0, 100)}`,
          );
          break;
        }
        case "completed": {
          const r = acc.results.get(e.taskID);
          judge(c.name, r?.status === "completed" && runs(e.taskID) === 1, `${r?.status}`);
          break;
        }
        case "dropped":
          // Stored, then removed without a result (the drained queue); no subject was built from it.
          judge(
            c.name,
            ack?.seq !== undefined && !ack.error,
            `stored as seq ${ack?.seq}, removed without a result`,
          );
          break;
        case "refused":
          judge(c.name, e.reason.test(ack?.error?.description ?? ""), `refused: ${ack?.error?.description}`);
          break;
        case "ignored":
          judge(c.name, ack?.seq !== undefined, `stored as seq ${ack?.seq}; no worker reacted`);
          break;
      }
    }
    // Cases built here rather than in the table.
    judge(
      "payload of 2 MiB (over the stream's max_msg_size)",
      /maximum|size/i.test(overStream.error?.description ?? ""),
      `refused: ${overStream.error?.description}`,
    );
    judge(
      `payload of ${MAX_PAYLOAD + 1024} bytes (over max_payload)`,
      /Maximum Payload/i.test(overServer),
      `server: ${overServer.trim().split("\n").at(-1)}`,
    );
    judge(
      "duplicate taskID, no Nats-Msg-Id",
      runs("h-dup") === 1 && env.wiretap.resultCount("h-dup") === 1,
      `runs=${runs("h-dup")} results=${env.wiretap.resultCount("h-dup")}`,
    );
    judge(
      "duplicate Nats-Msg-Id",
      dupA.duplicate !== true && dupB.duplicate === true && runs("h-dup-msgid") === 1,
      `second PubAck duplicate=${dupB.duplicate}`,
    );
    judge(
      "resubmitted finished task",
      runs("good-0") === 1 && env.wiretap.resultCount("good-0") === 1,
      `runs=${runs("good-0")}`,
    );
    const staged = acc.results.get("h-inputs-ok");
    judge(
      "staged inputs with hostile object names",
      staged?.status === "completed" &&
        existsSync(join(env.workspaceDir, "h-inputs-ok", "notes.txt")) &&
        !existsSync(join(env.workspaceDir, "..", "escaped.txt")) &&
        !existsSync(join(env.workspaceDir, "escaped.txt")),
      "only the named input is staged",
    );
    const missing = acc.results.get("h-inputs-missing");
    judge(
      "input that was never staged",
      missing?.errorCode === "ARTIFACT_ERROR" && (missing.error ?? "").includes("inputs"),
      `${missing?.errorCode}: ${missing?.error?.slice(0, 80)}`,
    );
    judge(
      "prototype pollution",
      ({} as Record<string, unknown>).polluted === undefined &&
        ({} as Record<string, unknown>).polluted2 === undefined,
      "Object.prototype untouched",
    );
    const junk = acc.results.get("h-junk-result");
    judge(
      "junk message on a result subject before the task",
      junk?.status === "completed" && runs("h-junk-result") === 1,
      `${junk?.status}, runs=${runs("h-junk-result")}`,
    );
    const junkInvalid = acc.results.get("h-junk-invalid");
    judge(
      "junk message on a result subject before an invalid task",
      junkInvalid?.errorCode === "INVALID_TASK",
      `${junkInvalid?.errorCode}: ${junkInvalid?.error}`,
    );
    const junkCancel = acc.results.get("h-junk-cancel");
    judge(
      "junk message on a cancel subject before the task",
      junkCancel?.status === "completed",
      `${junkCancel?.status}`,
    );
    // A forged result published before its task does not make the workers drop it: the task runs
    // once and its real result replaces the forged one.
    const victim = acc.results.get("h-victim");
    judge(
      "forged result before its task",
      runs("h-victim") === 1 && victim?.workerID !== "attacker",
      `runs=${runs("h-victim")}, stored result from ${victim?.workerID}`,
    );

    // No subject was ever built from a hostile name: every result and event subject is one of ours.
    const known = new Set([...resultIDs, "after-hostile"]);
    const strays = [...env.wiretap.subjects].filter((s) => {
      const prefix = [names.resultPrefix, names.streamPrefix].find((p) => s.startsWith(`${p}.`));
      return prefix !== undefined && !known.has(s.slice(prefix.length + 1));
    });

    // Documented: in single-tenant mode without permissions, a forged result after completion
    // replaces the stored one; the tenancy permissions are what prevent it (checked below).
    await send(nc, subject("result.good-1"), forgedResult("good-1"));
    const dispatcher = await CodingDispatcher.connect({ servers: env.servers, ensureTopology: false });
    const afterForge = await dispatcher.task("good-1").result({ timeout: "10s" });
    await dispatcher.close();
    const tenancy = await forgeUnderTenancy();

    const failed = verdicts.filter((v) => !v.ok);
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "6 hostile input (raw NATS client)",
      submitted: verdicts.length,
      completed: verdicts.length - failed.length,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      durationMs: Date.now() - started,
      figures: {
        "hostile cases": verdicts.length,
        "as expected": verdicts.length - failed.length,
        "good tasks completed": `${good.filter((id) => acc.results.get(id)?.status === "completed").length + 1}/${good.length + 1}`,
        "driver runs of rejected tasks": driver.calls.filter(
          (c) => c.taskID.startsWith("h-") && !runnable.has(c.taskID),
        ).length,
        "forged result before task":
          victim?.workerID !== "attacker" ? "task ran, real result stored" : "task dropped",
        "forged result after completion":
          afterForge.workerID === "attacker" ? "replaces the stored result" : "ignored",
        "tenancy: dispatcher user forging a result": tenancy.dispatcherForge,
        "tenancy: worker user publishing a result": tenancy.workerPublish,
        "secret leaks": leaks.length,
      },
    });
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    expect(verdicts.length).toBeGreaterThanOrEqual(30);
    expect(strays).toEqual([]);
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(env.workers.every((w) => w.state === "running")).toBe(true);
    expect(tenancy.dispatcherForge).toMatch(/^refused/);
    expect(tenancy.workerPublish).toMatch(/^accepted/);
    expect(leaks).toEqual([]);
  });
});

/** A task message of 2 MiB: over the task stream's max_msg_size of 1 MiB. */
function task2MB(): string {
  return JSON.stringify({ taskID: "h-2mb", prompt: "x", metadata: { blob: "y".repeat(2 * 1024 * 1024) } });
}
