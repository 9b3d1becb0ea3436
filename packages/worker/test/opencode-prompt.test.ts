// OpenCodeDriver.prompt against a real `opencode serve` (scripted model): a task naming a model,
// provider or agent OpenCode does not have ends at once with an error that says what is available,
// without OpenCode's stack traces; and a long turn does not pile up abort listeners while it polls.
import { getEventListeners } from "node:events";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventDraft, TaskInput } from "@station-coding/protocol";
import { codingNames, parseTask, resolveTask } from "@station-coding/protocol";
import { tempDir } from "@station-coding/testkit";
import type { OpenCodeDriver } from "@station-coding/worker";
import { startOpenCode } from "@station-coding/testkit/worker";

let oc: Awaited<ReturnType<typeof startOpenCode>>;
let root: string;
let dir: string;
const logs: string[] = [];
const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });

beforeAll(async () => {
  root = await tempDir("oc-prompt");
  dir = join(root, "ws");
  await mkdir(dir);
  oc = await startOpenCode(
    [
      { name: "slow", match: "take your time", steps: [{ delayMs: 1_500, text: "took my time" }] },
      { name: "quick", match: "say hi", steps: [{ text: "hi" }] },
    ],
    {
      pollInterval: 20,
      logger,
      workspaceRoot: root,
      // An agent whose configured model does not exist: OpenCode fails the turn before any model step.
      server: { config: { agent: { broken: { mode: "primary", model: "fake/missing-model" } } } },
    },
  );
}, 60_000);
afterAll(async () => {
  await oc?.close();
  await rm(root, { recursive: true, force: true });
});

/** Opens a session for `input` and runs its prompt, collecting the events it emits. */
async function run(
  driver: OpenCodeDriver,
  input: Omit<TaskInput, "taskID">,
  signal = new AbortController().signal,
) {
  const task = resolveTask(parseTask({ taskID: `t${Date.now()}`, ...input }), codingNames());
  const events: EventDraft[] = [];
  const emit = (event: EventDraft) => void events.push(event);
  const session = await driver.openSession({ task, directory: dir, signal, emit, logger });
  const outcome = await driver
    .prompt({
      task,
      session,
      directory: dir,
      prompt: task.prompt ?? "",
      signal,
      emit,
      storeArtifact: () => Promise.reject(new Error("no artifacts here")),
      logger,
    })
    .then(
      (result) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error: error as Error & { code?: string } }),
    );
  return { ...outcome, events };
}

const modelCalls = () => oc.model.scenarioCalls.length + oc.model.fallbackCalls.length;

describe("unknown model, provider or agent", () => {
  it("a model the provider does not have: an error naming it and the provider's models, no model call", async () => {
    const before = modelCalls();
    const { error, events } = await run(oc.driver, {
      prompt: "say hi",
      model: { providerID: "fake", modelID: "nope" },
    });
    expect(error).toMatchObject({
      name: "ModelNotFoundError",
      code: "MODEL_NOT_FOUND",
      retryable: false,
      message: 'model "fake/nope": not found in OpenCode; models of fake: fake/fake-model',
    });
    expect(events).toEqual([]);
    expect(modelCalls()).toBe(before);
  });

  it("a provider OpenCode does not have: an error naming it and the providers there are", async () => {
    const { error } = await run(oc.driver, { prompt: "say hi", model: { providerID: "nope", modelID: "x" } });
    expect(error?.code).toBe("MODEL_NOT_FOUND");
    expect(error?.message).toMatch(
      /^model "nope\/x": OpenCode has no provider "nope"; providers: .*\bfake\b/,
    );
  });

  it("an agent OpenCode does not have: an error naming it and the agents there are", async () => {
    const { error } = await run(oc.driver, { prompt: "say hi", agent: "no-such-agent" });
    expect(error?.code).toBe("AGENT_NOT_FOUND");
    expect(error?.message).toMatch(
      /^agent "no-such-agent": not found in OpenCode; agents: .*\bbuild\b.*\bplan\b/,
    );
    expect(error?.message).not.toContain("title");
  });

  it("an agent whose own model is missing: the turn ends at once with OpenCode's error, its stack trace only in the log", async () => {
    const { error, events } = await run(oc.driver, { prompt: "say hi", agent: "broken" });
    expect(error).toMatchObject({ code: "AGENT_ERROR", retryable: false });
    expect(error?.message).toMatch(/^opencode: .*Model not found: fake\/missing-model/);
    const errors = events.filter((e) => e.type === "error");
    expect(errors).toHaveLength(1);
    for (const text of [error?.message, ...errors.map((e) => e.content)]) {
      expect(text).not.toMatch(/\n\s+at |\$bunfs/);
    }
    expect(logs.join("")).toContain("opencode reported an internal error");
  });
});

describe("polling a long turn", () => {
  it("keeps at most one abort listener on the task's signal", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on("warning", onWarning);
    const controller = new AbortController();
    let most = 0;
    const sampler = setInterval(() => {
      most = Math.max(most, getEventListeners(controller.signal, "abort").length);
    }, 5);
    try {
      const { result, error } = await run(oc.driver, { prompt: "take your time" }, controller.signal);
      expect(error).toBeUndefined();
      expect(result?.text).toBe("took my time");
    } finally {
      clearInterval(sampler);
      process.off("warning", onWarning);
    }
    // 1.5 s of polls every 20 ms: the old loop added a listener per poll (MaxListenersExceededWarning at 11).
    expect(most).toBeLessThanOrEqual(1);
    expect(getEventListeners(controller.signal, "abort")).toHaveLength(0);
    expect(warnings).not.toContain("MaxListenersExceededWarning");
  });
});
