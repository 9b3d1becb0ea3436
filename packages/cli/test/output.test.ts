// Unit tests of the CLI's output: event lines, result summaries, the status report, the live
// status line and the printer that chooses between them.
import { afterEach, describe, expect, it, vi } from "vitest";
import type { DispatcherStatus, WorkerStatus } from "@station-coding/dispatcher";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import {
  ExitCode,
  StatusLine,
  TaskPrinter,
  eventJson,
  exitCodeFor,
  formatBytes,
  formatEvent,
  formatResult,
  formatStatus,
  formatStatusLine,
  formatTable,
  oneLine,
  resultJson,
  summarizeArgs,
} from "@station-coding/cli/internal";

const base = { taskID: "t1", timestamp: "2025-01-01T00:00:00.000Z" };

function result(overrides: Partial<TaskResult> = {}): TaskResult {
  return {
    taskID: "t1",
    status: "completed",
    result: "all done",
    session: { name: "s1", opencodeID: "ses_1", messageCount: 2 },
    workspace: {
      name: "s1",
      path: "/ws/s1",
      git: { branch: "main", commit: "0123456789abcdef", dirty: true },
    },
    metrics: {
      duration: 12_300,
      toolCalls: 3,
      streamEvents: 9,
      tokens: { input: 100, output: 20, reasoning: 5, cacheRead: 1000, cacheWrite: 0 },
      cost: 0.01234,
      model: "claude",
      provider: "anthropic",
    },
    workerID: "w-1",
    ...overrides,
  };
}

function worker(overrides: Partial<WorkerStatus> = {}): WorkerStatus {
  return {
    workerID: "w-1",
    state: "running",
    hostname: "h",
    pid: 1,
    version: "0.1.0",
    orgs: [],
    concurrency: 4,
    inFlight: 2,
    completed: 7,
    failed: 1,
    tasks: ["a", "b"],
    startedAt: base.timestamp,
    heartbeatAt: base.timestamp,
    heartbeatInterval: 5_000,
    liveness: "alive",
    heartbeatAge: 1_200,
    ...overrides,
  };
}

const eventCases: [StreamEvent, string][] = [
  [
    { ...base, seq: 1, type: "task_started", content: "attempt 1 on w-1" },
    "   1 task_started      attempt 1 on w-1",
  ],
  [
    {
      ...base,
      seq: 2,
      type: "workspace_created",
      content: "/ws/s1",
      workspace: { name: "s1", path: "/ws/s1", lastCommit: "0123456789abcdef" },
    },
    "   2 workspace_created s1 at /ws/s1 @0123456789ab",
  ],
  [
    { ...base, seq: 3, type: "session_reused", session: { name: "s1", opencodeID: "ses_1" } },
    "   3 session_reused    s1 (opencode ses_1)",
  ],
  [{ ...base, seq: 4, type: "text", content: "hello\n  world" }, "   4 text              hello world"],
  [
    {
      ...base,
      seq: 5,
      type: "tool_start",
      tool: { name: "bash", callID: "c1", args: { command: "npm test" } },
    },
    "   5 tool_start        bash npm test",
  ],
  [
    {
      ...base,
      seq: 6,
      type: "tool_end",
      tool: { name: "bash", callID: "c1", status: "completed", duration: 1_500, exitCode: 0 },
    },
    "   6 tool_end          bash completed in 1.5s exit 0",
  ],
  [
    {
      ...base,
      seq: 7,
      type: "tool_end",
      tool: { name: "edit", callID: "c2", status: "error", duration: 20, error: "no such file" },
    },
    "   7 tool_end          edit error in 20ms : no such file",
  ],
  [
    { ...base, seq: 8, type: "error", content: "provider down", errorCode: "AGENT_ERROR" },
    "   8 error             [AGENT_ERROR] provider down",
  ],
  [
    {
      ...base,
      seq: 9,
      type: "git_clone",
      content: "https://example.com/r.git",
      git: { url: "https://example.com/r.git", branch: "main", commit: "abcdef0123456789", duration: 900 },
    },
    "   9 git_clone         https://example.com/r.git branch main @abcdef012345 (900ms)",
  ],
  [
    {
      ...base,
      seq: 10,
      type: "permission",
      permission: {
        id: "p1",
        kind: "permission",
        permission: "bash",
        patterns: ["rm *"],
        decision: "reject",
      },
    },
    "  10 permission        permission bash rm * -> reject",
  ],
  [
    {
      ...base,
      seq: 11,
      type: "artifact",
      artifact: { bucket: "b", key: "output/t1/changes.patch", size: 2048 },
      content: "2 files changed",
    },
    "  11 artifact          output/t1/changes.patch (2.0 KiB) - 2 files changed",
  ],
  [{ ...base, seq: 12, type: "thinking" }, "  12 thinking"],
];

describe("event lines", () => {
  it.each(eventCases.map(([event, line]) => [event.type, event, line] as const))(
    "formats a %s event as seq, type and short content",
    (_type, event, line) => {
      expect(formatEvent(event)).toBe(line);
    },
  );

  it("summarizes tool arguments by their most telling one, else compact JSON, cut short", () => {
    expect(summarizeArgs({ filePath: "/a/b.ts", oldString: "x" })).toBe("/a/b.ts");
    expect(summarizeArgs({ limit: 3 })).toBe('{"limit":3}');
    expect(summarizeArgs({})).toBe("");
    expect(summarizeArgs({ command: "x".repeat(100) })).toBe(`${"x".repeat(59)}…`);
    expect(oneLine("a\n\tb   c", 100)).toBe("a b c");
    expect(oneLine("abcdef", 4)).toBe("abc…");
  });

  it("prints events and results as JSON lines, the result typed", () => {
    const event: StreamEvent = { ...base, seq: 1, type: "text", content: "x" };
    expect(JSON.parse(eventJson(event))).toEqual(event);
    const line = JSON.parse(resultJson(result())) as Record<string, unknown>;
    expect(line).toMatchObject({ type: "result", taskID: "t1", status: "completed" });
    expect(Object.keys(line)[0]).toBe("type");
  });
});

describe("result summary", () => {
  it("shows status, duration, tokens, cost, tool calls, session, workspace and the final text", () => {
    expect(formatResult(result()).split("\n")).toEqual([
      "task t1 completed in 12.3s (worker w-1)",
      "  tokens     125 (100 in, 20 out, 5 reasoning, 1000 cache read)",
      "  cost       $0.0123",
      "  tool calls 3",
      "  model      anthropic/claude",
      "  session    s1 (opencode ses_1, 2 messages)",
      "  workspace  s1 at /ws/s1 on main @0123456789ab (dirty)",
      "",
      "all done",
    ]);
  });

  it("shows the error with its code first, and no cost or tokens when none were reported", () => {
    const failed = result({
      status: "error",
      error: "provider down",
      errorCode: "AGENT_ERROR",
      retryable: true,
      result: undefined,
      metrics: { duration: 50, toolCalls: 0, streamEvents: 3, attempts: 3 },
      workspace: { name: "s1", path: "" },
    });
    expect(formatResult(failed).split("\n")).toEqual([
      "task t1 error in 50ms (attempt 3, worker w-1)",
      "  error      [AGENT_ERROR] provider down (retryable)",
      "  tokens     -",
      "  cost       -",
      "  tool calls 0",
      "  session    s1 (opencode ses_1, 2 messages)",
    ]);
  });

  it("cuts a long final text", () => {
    const text = Array.from({ length: 25 }, (_, i) => `line ${i}`).join("\n");
    const lines = formatResult(result({ result: text })).split("\n");
    expect(lines.at(-1)).toBe("… 5 more lines (--json shows all)");
    expect(lines.at(-2)).toBe("line 19");
  });

  it("maps each final status to its exit code", () => {
    expect(exitCodeFor("completed")).toBe(ExitCode.Ok);
    expect(exitCodeFor("error")).toBe(ExitCode.Error);
    expect(exitCodeFor("timeout")).toBe(ExitCode.Timeout);
    expect(exitCodeFor("cancelled")).toBe(ExitCode.Cancelled);
  });
});

describe("status report", () => {
  const status: DispatcherStatus = {
    org: undefined,
    tasks: {
      stream: "CODING_TASKS",
      messages: 5,
      consumer: { name: "coding-workers", pending: 3, ackPending: 2, redelivered: 1, waiting: 0 },
    },
    workers: [
      worker(),
      worker({ workerID: "w-2", liveness: "dead", inFlight: 0, tasks: [], heartbeatAge: 302_000 }),
    ],
    deadLetters: 4,
  };

  it("shows queue counters, dead letters and a table of workers with the dead ones marked", () => {
    expect(formatStatus(status).split("\n")).toEqual([
      "namespace     single-tenant",
      "task stream   CODING_TASKS: 5 messages (queued and running)",
      "consumer      coding-workers: 3 pending, 2 in flight (ack pending), 1 redelivered, 0 waiting pulls",
      "dead letters  4",
      "workers       1 alive, 1 dead",
      "",
      "WORKER      STATE    LOAD  DONE  FAILED  HEARTBEAT  TASKS",
      "w-1         running  2/4   7     1       1.2s ago   a,b",
      "w-2 (dead)  running  0/4   7     1       5m02s ago  -",
    ]);
  });

  it("says when no worker has created the consumer yet", () => {
    const empty: DispatcherStatus = {
      org: "acme",
      tasks: { stream: "CODING_TASKS_acme", messages: 1, consumer: undefined },
      workers: [],
      deadLetters: 0,
    };
    const text = formatStatus(empty);
    expect(text).toContain("namespace     org acme");
    expect(text).toContain("consumer      none yet: no worker has started");
    expect(text).not.toContain("WORKER");
  });

  it("pads table columns to the widest cell", () => {
    expect(formatTable(["A", "BB"], [["xyz", "1"]])).toBe("A    BB\nxyz  1");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(3 * 1024 * 1024)).toBe("3.0 MiB");
  });
});

/** A stream double that records what is written. */
function fakeStream(isTTY: boolean, columns = 80) {
  const writes: string[] = [];
  return {
    writes,
    text: () => writes.join(""),
    stream: {
      isTTY,
      columns,
      write: (text: string) => writes.push(text) > 0,
    } as unknown as NodeJS.WriteStream,
  };
}

describe("live status line", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("says the phase, counts and elapsed time, and what Ctrl-C does", () => {
    const p = { taskID: "t1", phase: "running", events: 12, toolCalls: 1, elapsed: 4_200 } as const;
    expect(formatStatusLine({ ...p, interrupt: "detach" })).toBe(
      "t1 running · 12 events · 1 tool call · 4.2s · Ctrl-C to detach",
    );
    expect(formatStatusLine({ ...p, interrupt: "cancel" })).toContain("Ctrl-C to cancel");
    expect(formatStatusLine({ ...p, phase: "cancelling", interrupt: "cancel" })).toContain(
      "Ctrl-C again to detach",
    );
  });

  it("prints lines above itself, redraws on a timer, fits the width and erases itself", () => {
    vi.useFakeTimers();
    const out = fakeStream(true, 12);
    let n = 0;
    const line = new StatusLine(out.stream, () => `status ${++n} long text`, 1_000);
    line.start();
    expect(out.writes).toEqual(["\r\x1b[2Kstatus 1 l…"]);
    line.print("event");
    expect(out.writes.slice(1)).toEqual(["\r\x1b[2K", "event\n", "\r\x1b[2Kstatus 2 l…"]);
    vi.advanceTimersByTime(1_000);
    expect(out.writes.at(-1)).toBe("\r\x1b[2Kstatus 3 l…");
    line.stop();
    expect(out.writes.at(-1)).toBe("\r\x1b[2K");
    vi.advanceTimersByTime(5_000);
    expect(out.writes.at(-1)).toBe("\r\x1b[2K");
  });
});

describe("task printer", () => {
  const events: StreamEvent[] = [
    { ...base, seq: 1, type: "task_started", content: "attempt 1 on w-1" },
    { ...base, seq: 2, type: "tool_start", tool: { name: "bash", callID: "c1", args: { command: "ls" } } },
  ];

  it("prints plain lines without a status line when stdout is not a TTY", () => {
    const out = fakeStream(false);
    const err = fakeStream(false);
    const printer = new TaskPrinter("t1", false, "detach", out.stream, err.stream);
    printer.start();
    for (const event of events) printer.event(event);
    printer.note("a note");
    printer.result(result());
    expect(out.text()).toBe(
      `${formatEvent(events[0]!)}\n${formatEvent(events[1]!)}\n${formatResult(result())}\n`,
    );
    expect(err.text()).toBe("a note\n");
  });

  it("prints JSON lines only, even on a TTY", () => {
    const out = fakeStream(true);
    const printer = new TaskPrinter("t1", true, "detach", out.stream, fakeStream(false).stream);
    printer.start();
    for (const event of events) printer.event(event);
    printer.result(result());
    const lines = out.text().trimEnd().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { type: string }).type)).toEqual([
      "task_started",
      "tool_start",
      "result",
    ]);
  });

  it("keeps a status line under the events on a TTY and erases it before the result", () => {
    const out = fakeStream(true, 200);
    const printer = new TaskPrinter("t1", false, "detach", out.stream, fakeStream(false).stream);
    printer.start();
    expect(out.text()).toContain("t1 queued · 0 events");
    for (const event of events) printer.event(event);
    expect(out.writes.at(-1)?.startsWith("\r\x1b[2Kt1 running · 2 events · 1 tool call · ")).toBe(true);
    printer.result(result());
    expect(out.text().endsWith(`\r\x1b[2K${formatResult(result())}\n`)).toBe(true);
  });
});
