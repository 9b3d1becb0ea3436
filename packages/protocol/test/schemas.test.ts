import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  AgentContext,
  SessionState,
  StreamEvent,
  TaskResult,
  codingNames,
  parseTask,
  recoverTaskID,
  resolveTask,
} from "@station-coding/protocol";
import { validationError } from "./support/validation.js";

const fixtures = JSON.parse(
  readFileSync(new URL("./fixtures/existing-format.json", import.meta.url), "utf8"),
) as {
  tasks: unknown[];
  events: unknown[];
  results: unknown[];
  sessions: unknown[];
  contexts: unknown[];
};

describe("existing Station wire format", () => {
  it.each(fixtures.tasks.map((t, i) => [i, t]))("task %i parses unchanged", (_i, task) => {
    expect(parseTask(JSON.stringify(task))).toEqual(task);
  });

  it("existing tasks resolve to the subjects the Go dispatcher sent", () => {
    const names = codingNames();
    for (const raw of fixtures.tasks) {
      const resolved = resolveTask(parseTask(raw), names);
      expect(resolved.callback).toEqual((raw as { callback: unknown }).callback);
    }
  });

  it.each(fixtures.events.map((e) => [(e as { type: string }).type, e]))(
    "event %s parses unchanged",
    (_t, event) => {
      expect(StreamEvent.parse(event)).toEqual(event);
    },
  );

  it.each(fixtures.results.map((r) => [(r as { status: string }).status, r]))(
    "result %s parses unchanged",
    (_s, result) => {
      expect(TaskResult.parse(result)).toEqual(result);
    },
  );

  it("session states and agent contexts parse unchanged", () => {
    for (const s of fixtures.sessions) expect(SessionState.parse(s)).toEqual(s);
    for (const c of fixtures.contexts) expect(AgentContext.parse(c)).toEqual(c);
  });
});

describe("minimal task", () => {
  it("defaults session to the taskID, workspace to the session and callbacks to the task's subjects", () => {
    const task = resolveTask(parseTask('{"taskID":"t-1","prompt":"hi"}'), codingNames());
    expect(task.session).toEqual({ name: "t-1", continue: true });
    expect(task.workspace.name).toBe("t-1");
    expect(task.workspace.scope).toBe("agent");
    expect(task.op).toBe("code");
    expect(task.agentID).toBe("t-1");
    expect(task.callback).toEqual({
      streamSubject: "station.coding.stream.t-1",
      resultSubject: "station.coding.result.t-1",
    });
  });

  it("uses the org's subjects for a tenant and the session name for the workspace", () => {
    const task = resolveTask(
      parseTask({ taskID: "t-2", prompt: "hi", session: { name: "s" } }),
      codingNames({ org: "acme" }),
    );
    expect(task.workspace.name).toBe("s");
    expect(task.callback).toEqual({
      streamSubject: "org.acme.coding.stream.t-2",
      resultSubject: "org.acme.coding.result.t-2",
    });
  });
});

describe("invalid tasks", () => {
  const hostileNames = [
    ["a.b", 'must not contain "."'],
    ["a*", "wildcards"],
    ["a>", "wildcards"],
    ["a b", "whitespace"],
    ["a\u0001b", "control characters"],
    ["a/b", '"/"'],
    ["a\\b", '"/"'],
    ["..", '".."'],
    ["", "must not be empty"],
    ["x".repeat(129), "at most 128"],
    ["-rf", 'must not start with "-"'],
    ["héllo", "only letters"],
  ] as const;

  const fields: [string, (v: string) => unknown][] = [
    ["taskID", (v) => ({ taskID: v, prompt: "p" })],
    ["session.name", (v) => ({ taskID: "t", prompt: "p", session: { name: v } })],
    ["workspace.name", (v) => ({ taskID: "t", prompt: "p", workspace: { name: v } })],
    ["org", (v) => ({ taskID: "t", prompt: "p", org: v })],
    ["agentID", (v) => ({ taskID: "t", prompt: "p", agentID: v })],
  ];

  for (const [field, build] of fields) {
    it.each(hostileNames)(`rejects ${field} %j naming the field and the rule`, (value, rule) => {
      const err = validationError(() => parseTask(build(value)));
      expect(err.field).toBe(field);
      expect(err.code).toBe("INVALID_TASK");
      expect(err.message).toContain(field);
      expect(err.message).toContain(rule);
    });
  }

  it("rejects artifact input names with path tokens, naming the field", () => {
    for (const bad of ["../etc/passwd", "/abs", ".hidden", "a/b", "a b", "-x"]) {
      const err = validationError(() => parseTask({ taskID: "t", prompt: "p", inputs: ["ok.txt", bad] }));
      expect(err.field).toBe("inputs.1");
    }
    expect(parseTask({ taskID: "t", prompt: "p", inputs: ["data.csv", "notes_v2.md"] }).inputs).toHaveLength(
      2,
    );
  });

  it("rejects malformed JSON, non-objects, wrong types and a missing prompt with clear messages", () => {
    expect(validationError(() => parseTask("{not json")).message).toMatch(/^task: not valid JSON/);
    expect(validationError(() => parseTask("[1,2]")).message).toBe("task: must be a JSON object");
    expect(validationError(() => parseTask({ taskID: 5, prompt: "p" })).field).toBe("taskID");
    expect(validationError(() => parseTask({ taskID: "t", prompt: "p", timeout: "10m" })).field).toBe(
      "timeout",
    );
    expect(validationError(() => parseTask({ taskID: "t" })).message).toBe(
      "prompt: is required and must not be empty",
    );
    expect(validationError(() => parseTask({ taskID: "t", prompt: "   " })).field).toBe("prompt");
    expect(validationError(() => parseTask({ prompt: "p" })).field).toBe("taskID");
  });

  it("rejects git URLs and refs that could be read as options", () => {
    const err = validationError(() =>
      parseTask({ taskID: "t", prompt: "p", workspace: { git: { url: "--upload-pack=touch /tmp/x" } } }),
    );
    expect(err.field).toBe("workspace.git.url");
    expect(err.message).toContain('must not start with "-"');
    expect(
      validationError(() =>
        parseTask({ taskID: "t", prompt: "p", workspace: { git: { url: "https://x", branch: "-b" } } }),
      ).field,
    ).toBe("workspace.git.branch");
  });

  it("rejects callbacks that point outside the task's subjects and tasks for another org", () => {
    const names = codingNames({ org: "acme" });
    const forged = parseTask({
      taskID: "t",
      prompt: "p",
      callback: { resultSubject: "org.other.coding.result.t" },
    });
    expect(validationError(() => resolveTask(forged, names)).field).toBe("callback.resultSubject");
    expect(
      validationError(() => resolveTask(parseTask({ taskID: "t", prompt: "p", org: "other" }), names)).field,
    ).toBe("org");
  });

  it("recovers the taskID of an invalid task only when it is a valid name", () => {
    expect(recoverTaskID('{"taskID":"t-9","prompt":5}')).toBe("t-9");
    expect(recoverTaskID('{"taskID":"a.>","prompt":"x"}')).toBeUndefined();
    expect(recoverTaskID("{oops")).toBeUndefined();
  });
});

describe("stream events", () => {
  it("rejects an unknown type and a non-positive seq", () => {
    const base = { taskID: "t", seq: 1, timestamp: "2026-01-01T00:00:00Z" };
    expect(StreamEvent.safeParse({ ...base, type: "nope" }).success).toBe(false);
    expect(StreamEvent.safeParse({ ...base, seq: 0, type: "text" }).success).toBe(false);
    expect(StreamEvent.safeParse({ ...base, type: "thinking", content: "hmm" }).success).toBe(true);
  });
});
