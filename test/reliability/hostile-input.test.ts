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
import type { TaskResult, TaskStatus } from "@station-coding/protocol";
import {
  DeadLetters,
  MAX_TIMEOUT_MS,
  codingNames,
  credentialsAuthenticator,
  ensureTopology,
} from "@station-coding/protocol";
import { NatsServer, tempDir, waitFor } from "@station-coding/testkit";
import { pino } from "pino";
import { ScriptedDriver, script, startOpenCode } from "@station-coding/testkit/worker";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import type { HostileCase } from "./support/hostile-cases.js";
import { hostileCases } from "./support/hostile-cases.js";
import {
  LONG_ANSWER,
  MANY_FILES,
  hostileScenarios,
  maxDeliveriesAdvisory,
  taskOfSize,
} from "./support/hostile-opencode.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow } from "./support/scenario-row.js";
import { TenancyStore } from "@station-coding/cli/internal";
import type { OrgRole } from "@station-coding/cli/internal";

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

describe("6b hostile input against a worker driving real OpenCode (issue 15)", () => {
  let oc: Awaited<ReturnType<typeof startOpenCode>>;
  let ocEnv: Env;
  const warnings: Error[] = [];
  const onWarning = (warning: Error) => void warnings.push(warning);

  beforeAll(async () => {
    process.on("warning", onWarning);
    // The server's default max_payload (1 MiB), the size the findings were made at.
    ocEnv = await startEnv();
    const logger = pino({ level: "info" }, { write: (line: string) => void ocEnv.logs.push(line) });
    // Polls every 50 ms: with the old poll loop a task of half a second leaked 10 abort listeners.
    oc = await startOpenCode(hostileScenarios(), {
      pollInterval: 50,
      logger,
      workspaceRoot: ocEnv.workspaceDir,
    });
    // maxDeliver set, so that a forged advisory is judged by the lease, not dismissed outright.
    await ocEnv.startWorker({ concurrency: 4, maxDeliver: 20, maxAttempts: 2 }, oc.driver);
  }, 90_000);
  afterAll(async () => {
    process.off("warning", onWarning);
    await ocEnv?.close();
    await oc?.close();
  });

  it("ends every hostile task with a clear result (or runs it once), retries nothing forever, and keeps serving", async (context) => {
    const started = Date.now();
    const { nc, names } = ocEnv;
    const maxPayload = nc.info?.max_payload ?? 0;
    const subject = (s = "task") => `station.coding.${s}`;
    const task = (taskID: string, extra: Record<string, unknown>) =>
      send(nc, subject(), JSON.stringify({ taskID, ...extra }));
    const verdicts: { name: string; ok: boolean; detail: string }[] = [];
    const judge = (name: string, ok: boolean, detail: string) => verdicts.push({ name, ok, detail });
    const promptSent = new Set<string>();
    const stopWatching = ocEnv.wiretap.on((kind, value) => {
      if (kind === "event" && "type" in value && value.type === "prompt_sent") promptSent.add(value.taskID);
    });

    // 1. Sizes: an echo over max_payload, metadata of 1 MB, an answer and a result over max_payload,
    // a dead letter over max_payload (its git host refuses connections: retryable, 2 attempts).
    const nearLimit = taskOfSize("h15-near-limit", "prompt near the limit ", maxPayload - 64);
    const nearAck = await send(nc, subject(), nearLimit);
    await task("h15-metadata", { prompt: "say hi", metadata: { blob: "m".repeat(1_000_000) } });
    await task("h15-long-answer", { prompt: "answer at length" });
    await task("h15-many-files", { prompt: "make many files" });
    const deadPrompt = `say hi ${'"'.repeat(300_000)}`;
    await task("h15-dead-letter", {
      prompt: deadPrompt,
      workspace: { git: { url: "https://127.0.0.1:1/unreachable.git" } },
    });
    // 2. A cancel whose reason is 1 MB, for a task that runs.
    await task("h15-cancel", { prompt: "be slow" });
    // 3. A model, a provider and an agent OpenCode does not have.
    await task("h15-no-model", { prompt: "say hi", model: { providerID: "fake", modelID: "nope" } });
    await task("h15-no-provider", { prompt: "say hi", model: { providerID: "nope", modelID: "x" } });
    await task("h15-no-agent", { prompt: "say hi", agent: "no-such-agent" });
    // 4. One taskID published three times at once, without Nats-Msg-Id.
    const thrice = JSON.stringify({ taskID: "h15-thrice", prompt: "three at once" });
    const thriceAcks = await Promise.all([1, 2, 3].map(() => send(nc, subject(), thrice)));
    // 5. Timeouts at and past the longest Node.js timer.
    await task("h15-timeout-over", { prompt: "say hi", timeout: MAX_TIMEOUT_MS + 1 });
    await task("h15-timeout-max", { prompt: "say hi", timeout: MAX_TIMEOUT_MS });
    // 6. A forged max-deliveries advisory for a running task.
    const watched = await task("h15-advisory", { prompt: "advisory target" });

    await waitFor(() => promptSent.has("h15-cancel") && promptSent.has("h15-advisory"), {
      timeout: 60_000,
      message: "the cancel and advisory targets to run",
    });
    const cancelAck = await send(
      nc,
      subject("cancel.h15-cancel"),
      JSON.stringify({ taskID: "h15-cancel", reason: "r".repeat(1_000_000) }),
    );
    const forged = maxDeliveriesAdvisory(names.streams.tasks, names.consumer, watched.seq ?? 0, 20);
    nc.publish(forged.subject, forged.payload);

    const ids = [
      "h15-near-limit",
      "h15-metadata",
      "h15-long-answer",
      "h15-many-files",
      "h15-dead-letter",
      "h15-cancel",
      "h15-no-model",
      "h15-no-provider",
      "h15-no-agent",
      "h15-thrice",
      "h15-timeout-over",
      "h15-timeout-max",
      "h15-advisory",
    ];
    // Generous bounds that fail instead of hanging; the scenario's row shows how long it took.
    await waitForResults(ocEnv, ids, 120_000);

    // The dead letter kept its task in the object store: a replay reads it from there and runs it again.
    const deadLetters = new DeadLetters(nc, names);
    const letter = await waitFor(
      async () => (await deadLetters.list()).find((l) => l.taskID === "h15-dead-letter"),
      {
        message: "the dead letter of h15-dead-letter",
      },
    );
    await deadLetters.replay("h15-dead-letter");
    const replayed = await waitFor(
      async () => (await deadLetters.list()).find((l) => l.taskID === "h15-dead-letter"),
      { timeout: 60_000, message: "the replayed task to be dead-lettered again" },
    );

    // 7 and the rest: a normal task afterwards completes; the queue drains; nothing stays pending.
    await task("h15-after", { prompt: "say hi" });
    await waitForResults(ocEnv, ["h15-after"], 60_000);
    const jsm = await jetstreamManager(nc);
    await waitFor(
      async () => {
        const consumer = await jsm.consumers.info(names.streams.tasks, names.consumer);
        const stream = await jsm.streams.info(names.streams.tasks);
        return stream.state.messages === 0 && consumer.num_ack_pending === 0;
      },
      { timeout: 30_000, message: "the task queue to drain" },
    );
    stopWatching();

    const expected: Record<string, string> = {
      "h15-metadata": "error",
      "h15-many-files": "error",
      "h15-cancel": "cancelled",
      "h15-no-model": "error",
      "h15-no-provider": "error",
      "h15-no-agent": "error",
      "h15-timeout-over": "error",
    };
    // The replayed dead letter runs a second time on purpose: it is judged below, not counted here.
    const acc = await account(ocEnv, [...ids.filter((id) => id !== "h15-dead-letter"), "h15-after"], {
      expected: (id) => (expected[id] ?? "completed") as TaskStatus,
    });
    const result = (id: string) => acc.results.get(id);
    const events = (id: string) => acc.events.get(id) ?? [];
    const stored = async (key: string | undefined) => {
      const store = await new Objm(nc).open(names.objectStore);
      return new TextDecoder().decode((key ? await store.getBlob(key) : null) ?? new Uint8Array());
    };
    const modelRuns = (scenario: string) =>
      oc.model.scenarioCalls.filter((c) => c.scenario === scenario && c.step === 0).length;

    // 1
    const near = events("h15-near-limit").find((e) => e.type === "prompt_sent");
    const nearWhole = JSON.parse((await stored(near?.fullEvent?.key)) || "{}") as { content?: string };
    judge(
      "1 prompt_sent larger than max_payload",
      result("h15-near-limit")?.status === "completed" &&
        nearAck.seq !== undefined &&
        near?.truncated === true &&
        nearWhole.content === (JSON.parse(nearLimit) as { prompt: string }).prompt,
      `task ${Buffer.byteLength(nearLimit)} bytes; event cut, whole at ${near?.fullEvent?.key}`,
    );
    judge(
      "1 metadata of 1 MB",
      result("h15-metadata")?.errorCode === "INVALID_TASK" &&
        (result("h15-metadata")?.error ?? "").includes("metadata"),
      `${result("h15-metadata")?.error?.slice(0, 80)}`,
    );
    const long = result("h15-long-answer");
    const longWhole = JSON.parse((await stored(long?.fullResult?.key)) || "{}") as TaskResult;
    judge(
      "1 answer larger than max_payload",
      long?.status === "completed" &&
        long.truncated === true &&
        (longWhole.result ?? "").trim() === LONG_ANSWER.trim(),
      `result cut to ${long?.result?.length} characters, whole at ${long?.fullResult?.key}`,
    );
    const many = result("h15-many-files");
    const manyWhole = JSON.parse((await stored(many?.fullResult?.key)) || "{}") as TaskResult;
    judge(
      "1 result that cutting text cannot fit",
      many?.errorCode === "RESULT_TOO_LARGE" && manyWhole.changes?.files.length === MANY_FILES,
      `${many?.errorCode}: ${many?.error?.slice(0, 90)}`,
    );
    judge(
      "1 dead letter larger than max_payload",
      letter.payload === "" &&
        letter.payloadRef !== undefined &&
        replayed.payloadRef !== undefined &&
        result("h15-dead-letter")?.errorCode === "GIT_UNAVAILABLE",
      `task kept at ${letter.payloadRef?.key}; replayed and dead-lettered again`,
    );
    // 2
    const cancelled = result("h15-cancel");
    judge(
      "2 cancel with a reason of 1 MB",
      cancelAck.seq !== undefined &&
        cancelled?.status === "cancelled" &&
        (cancelled.error ?? "").includes("must be at most 1024 characters") &&
        !(cancelled.error ?? "").includes("before"),
      `${cancelled?.error?.slice(0, 100)}`,
    );
    // 3
    const internals = /\n\s+at |\$bunfs/;
    const unknown = (id: string, code: string, lists: string) => {
      const r = result(id);
      const clean = [r?.error, ...events(id).map((e) => e.content)].every((t) => !internals.test(t ?? ""));
      judge(
        `3 ${id.slice(4)}`,
        r?.errorCode === code && (r.error ?? "").includes(lists) && clean,
        `${r?.error}`,
      );
    };
    unknown("h15-no-model", "MODEL_NOT_FOUND", "fake/fake-model");
    unknown("h15-no-provider", "MODEL_NOT_FOUND", "fake");
    unknown("h15-no-agent", "AGENT_NOT_FOUND", "build");
    // 4
    judge(
      "4 one taskID three times without Nats-Msg-Id",
      thriceAcks.every((a) => a.seq !== undefined && a.duplicate !== true) &&
        modelRuns("thrice") === 1 &&
        events("h15-thrice").filter((e) => e.type === "task_started").length === 1 &&
        ocEnv.wiretap.resultCount("h15-thrice") === 1,
      `stored 3 times; model runs=${modelRuns("thrice")}, results=${ocEnv.wiretap.resultCount("h15-thrice")}`,
    );
    // 5
    judge(
      "5 timeout of 2^31 ms",
      result("h15-timeout-over")?.errorCode === "INVALID_TASK" &&
        (result("h15-timeout-over")?.error ?? "").startsWith("timeout"),
      `${result("h15-timeout-over")?.error}`,
    );
    judge(
      "5 timeout of 2^31-1 ms",
      result("h15-timeout-max")?.status === "completed",
      `${result("h15-timeout-max")?.status}`,
    );
    // 6
    const survivor = result("h15-advisory");
    judge(
      "6 forged max-deliveries advisory for a running task",
      survivor?.status === "completed" && survivor.result === "survived" && modelRuns("watched") === 1,
      `${survivor?.status}: ${survivor?.result}`,
    );
    // 7
    const leaks = warnings.filter((w) => w.name === "MaxListenersExceededWarning");
    judge(
      "7 abort listeners of the poll loop",
      leaks.length === 0,
      `${leaks.length} MaxListenersExceededWarning`,
    );
    judge(
      "worker keeps serving",
      result("h15-after")?.status === "completed",
      `${result("h15-after")?.status}`,
    );

    const failed = verdicts.filter((v) => !v.ok);
    const secretLeaks = await ocEnv.secretLeaks();
    recordRow(context, {
      scenario: "6b hostile input, real OpenCode",
      submitted: verdicts.length,
      completed: verdicts.length - failed.length,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      durationMs: Date.now() - started,
      figures: {
        "findings of issue 15 covered": new Set(
          verdicts.filter((v) => v.ok && /^\d /.test(v.name)).map((v) => v.name[0]),
        ).size,
        "cases as expected": `${verdicts.length - failed.length}/${verdicts.length}`,
        max_payload: maxPayload,
        "worker state": ocEnv.workers.map((w) => w.state).join(","),
        "secret leaks": secretLeaks.length,
      },
    });
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    expect(acc.lost).toEqual([]);
    expect(acc.duplicated).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(ocEnv.workers.every((w) => w.state === "running")).toBe(true);
    expect(secretLeaks).toEqual([]);
  });
});
