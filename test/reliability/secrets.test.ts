import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Objm } from "@nats-io/obj";
import type { TaskInput } from "@station-coding/protocol";
import { GitServer } from "@station-coding/testkit";
import { script } from "@station-coding/testkit/worker";
import type { Env } from "./support/env.js";
import { startEnv } from "./support/env.js";
import { account, waitForResults } from "./support/ledger.js";
import { recordRow } from "./support/scenario-row.js";
import { FAKE_API_KEY, fakeToken } from "./support/secrets.js";

const INLINE = fakeToken("inline");
const KV_TOKEN = fakeToken("kv");
const WRONG = fakeToken("wrong");

let env: Env;
let inlineGit: GitServer;
let kvGit: GitServer;
beforeAll(async () => {
  inlineGit = await GitServer.start({ token: INLINE });
  kvGit = await GitServer.start({ token: KV_TOKEN });
  await inlineGit.createRepo("app", { "README.md": "# app\n" });
  await kvGit.createRepo("lib", { "README.md": "# lib\n" });
  env = await startEnv({
    secrets: [
      { name: "workspace.git.token", value: INLINE },
      { name: "secrets KV token", value: KV_TOKEN },
      { name: "wrong git token", value: WRONG },
    ],
  });
});
afterAll(async () => {
  await env?.close();
  await inlineGit?.stop();
  await kvGit?.stop();
});

/** A model that repeats every secret it was shown, in text, tool arguments and tool output. */
const echo = (...secrets: string[]) =>
  script(
    { text: `I was told ${secrets.join(" and ")}. ` },
    { thinking: `the key is ${FAKE_API_KEY}` },
    {
      tool: {
        name: "bash",
        args: { command: `curl -H 'Authorization: ${secrets[0]}'` },
        output: secrets.join("\n"),
      },
    },
    { text: `done with ${FAKE_API_KEY}` },
  );

describe("7 secrets", () => {
  it("keeps tokens and API keys out of every message, log line and artifact", async (context) => {
    const started = Date.now();
    await (await new Kvm(env.nc).open(env.names.kv.secrets)).put("lib-token", KV_TOKEN);
    const options = { git: { allowHttp: true }, maxAttempts: 2, retryDelay: 100 };
    await env.spawnWorker(options);
    await env.startWorker(options);

    const tasks: (TaskInput & { expect: "completed" | "error" })[] = [
      {
        taskID: "secret-inline",
        workspace: { git: { url: inlineGit.url("app"), token: INLINE } },
        prompt: echo(INLINE, FAKE_API_KEY),
        expect: "completed",
      },
      {
        taskID: "secret-kv",
        workspace: { git: { url: kvGit.url("lib"), tokenFromKV: "lib-token" } },
        prompt: echo(KV_TOKEN, FAKE_API_KEY),
        expect: "completed",
      },
      {
        taskID: "secret-wrong-token",
        workspace: { git: { url: inlineGit.url("app"), token: WRONG } },
        prompt: echo(WRONG),
        expect: "error",
      },
      {
        // Fails (retryably) on every run: ends as a dead letter, which keeps the task message
        // without its token.
        taskID: "secret-dead-letter",
        workspace: { git: { url: inlineGit.url("app"), token: INLINE } },
        prompt: script({ text: INLINE }, { fail: { message: `provider said ${INLINE}`, retryable: true } }),
        expect: "error",
      },
      {
        // The agent writes the token and its own API key into a file: they would reach the patch artifact.
        taskID: "secret-in-file",
        workspace: { git: { url: inlineGit.url("app"), token: INLINE } },
        prompt: script(
          {
            writeFile: {
              name: "config.env",
              content: `TOKEN=${INLINE}\nANTHROPIC_API_KEY=${FAKE_API_KEY}\n`,
            },
          },
          { text: "saved" },
        ),
        expect: "completed",
      },
    ];
    const js = jetstream(env.nc);
    for (const { expect: _e, ...task } of tasks) {
      await js.publish(env.names.taskSubject, JSON.stringify(task), { msgID: task.taskID });
    }
    const ids = tasks.map((t) => t.taskID);
    await waitForResults(env, ids, 60_000);
    const acc = await account(env, ids, { expected: (id) => tasks.find((t) => t.taskID === id)!.expect });
    const leaks = await env.secretLeaks();
    recordRow(context, {
      scenario: "7 secrets (wiretap on >, logs, object store)",
      submitted: acc.submitted,
      completed: acc.completed,
      lost: acc.lost.length,
      duplicated: acc.duplicated.length,
      durationMs: Date.now() - started,
      figures: {
        "messages scanned": env.wiretap.messages,
        "MB scanned": (env.wiretap.bytes / 1024 / 1024).toFixed(1),
        "secret leaks": leaks.length,
        "leaked where": [...new Set(leaks.map((l) => `${l.secret} in ${l.where}`))].join(", ") || "-",
      },
    });
    expect(acc.lost).toEqual([]);
    expect(acc.unexpected).toEqual([]);
    expect(leaks).toEqual([]);
    // The secrets were really used and really echoed, and came out masked.
    expect(inlineGit.requests.some((r) => r.authorized)).toBe(true);
    expect(kvGit.requests.some((r) => r.authorized)).toBe(true);
    expect(acc.results.get("secret-inline")?.result).toContain("[REDACTED]");
    expect(acc.results.get("secret-kv")?.result).toContain("[REDACTED]");
    expect(acc.results.get("secret-wrong-token")?.errorCode).toBe("GIT_AUTH_FAILED");
    const letter = await env.lookups.deadLetter("secret-dead-letter");
    expect(letter?.reason).toContain("[REDACTED]");
    expect(letter?.gitTokenRemoved).toBe(true);
    const patch = acc.results.get("secret-in-file")?.artifacts?.find((a) => a.kind === "patch");
    const store = await new Objm(env.nc).open(env.names.objectStore);
    const text = new TextDecoder().decode((await store.getBlob(patch?.key ?? "")) ?? new Uint8Array());
    expect(text).toContain("TOKEN=[REDACTED]");
    expect(text).toContain("ANTHROPIC_API_KEY=[REDACTED]");
  });
});
