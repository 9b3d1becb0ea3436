import type { DispatcherStatus, WorkerStatus } from "@station-coding/dispatcher";
import type { StreamEvent, TaskResult, TaskStatus } from "@station-coding/protocol";
import { formatDuration } from "@station-coding/protocol";
import { ExitCode } from "./exit-codes.js";

/** Longest short content shown on an event line, in characters. */
const CONTENT_WIDTH = 100;
/** Longest tool argument summary shown on a `tool_start` line. */
const ARGS_WIDTH = 60;
/** Width of the type column of event lines (the longest type, `workspace_created`, plus one). */
const TYPE_WIDTH = 18;
/** Lines of the agent's final text shown in a human result summary. */
const RESULT_TEXT_LINES = 20;
/** Tool arguments that say most about a call, in the order they are looked for. */
const TELLING_ARGS = ["command", "filePath", "path", "pattern", "url", "query", "description"];

/** `text` on one line (whitespace runs collapsed), cut to `max` characters with an ellipsis. */
export function oneLine(text: string, max = CONTENT_WIDTH): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, Math.max(0, max - 1))}…` : flat;
}

/** A short summary of a tool call's arguments: its most telling argument, else compact JSON. */
export function summarizeArgs(args: Record<string, unknown> | undefined, max = ARGS_WIDTH): string {
  if (!args || Object.keys(args).length === 0) return "";
  for (const key of TELLING_ARGS) {
    const value = args[key];
    if (typeof value === "string" && value.trim() !== "") return oneLine(value, max);
  }
  return oneLine(JSON.stringify(args), max);
}

/** The first 12 characters of a commit hash. */
function shortHash(hash: string | undefined): string | undefined {
  return hash?.slice(0, 12);
}

/** Joins the defined, non-empty parts with spaces. */
function join(...parts: (string | undefined | false)[]): string {
  return parts.filter((part): part is string => typeof part === "string" && part !== "").join(" ");
}

/** What an event says, on one line, without its seq and type. */
export function describeEvent(event: StreamEvent): string {
  switch (event.type) {
    case "task_started":
      return oneLine(event.content ?? `attempt ${event.attempt ?? 1} on ${event.workerID ?? "a worker"}`);
    case "session_created":
    case "session_reused":
    case "session_restored": {
      const session = event.session
        ? `${event.session.name} (opencode ${event.session.opencodeID})`
        : undefined;
      return join(session, event.content !== undefined && `- ${oneLine(event.content)}`);
    }
    case "workspace_created":
    case "workspace_reused": {
      const ws = event.workspace;
      if (!ws) return oneLine(event.content ?? "");
      return join(
        ws.name,
        "at",
        ws.path,
        ws.dirty && "(dirty)",
        ws.lastCommit && `@${shortHash(ws.lastCommit)}`,
      );
    }
    case "git_clone":
    case "git_pull":
    case "git_checkout":
    case "git_commit":
    case "git_push": {
      const git = event.git ?? {};
      const counts =
        git.filesChanged !== undefined
          ? `${git.filesChanged} files +${git.insertions ?? 0} -${git.deletions ?? 0}`
          : undefined;
      return join(
        event.content !== undefined ? oneLine(event.content, 60) : git.url,
        git.branch && `branch ${git.branch}`,
        git.commit && `@${shortHash(git.commit)}`,
        counts,
        git.remote && `to ${git.remote}`,
        git.duration !== undefined && `(${formatDuration(git.duration)})`,
      );
    }
    case "prompt_sent":
    case "text":
    case "thinking":
      return oneLine(event.content ?? "");
    case "tool_start":
      return join(event.tool?.name ?? "tool", summarizeArgs(event.tool?.args));
    case "tool_end": {
      const tool = event.tool;
      if (!tool) return oneLine(event.content ?? "");
      return join(
        tool.name,
        tool.status ?? "done",
        tool.duration !== undefined && `in ${formatDuration(tool.duration)}`,
        tool.exitCode !== undefined && `exit ${tool.exitCode}`,
        tool.status === "error" && tool.error !== undefined && `: ${oneLine(tool.error, 60)}`,
        tool.truncated === true && "(output truncated)",
      );
    }
    case "error":
      return join(event.errorCode && `[${event.errorCode}]`, oneLine(event.content ?? ""));
    case "permission": {
      const p = event.permission;
      if (!p) return oneLine(event.content ?? "");
      return join(
        p.kind,
        p.permission,
        p.patterns && p.patterns.length > 0 && oneLine(p.patterns.join(", "), 40),
        `-> ${p.decision}`,
        p.reason && `(${oneLine(p.reason, 40)})`,
      );
    }
    case "artifact": {
      const a = event.artifact;
      if (!a) return oneLine(event.content ?? "");
      return join(a.key, `(${formatBytes(a.size)})`, event.content && `- ${oneLine(event.content, 60)}`);
    }
  }
}

/** One human line for an event: seq, type and a short content. */
export function formatEvent(event: StreamEvent): string {
  const text = describeEvent(event);
  return `${String(event.seq).padStart(4)} ${text === "" ? event.type : event.type.padEnd(TYPE_WIDTH)}${text}`.trimEnd();
}

/** The JSON line of an event (`--json`). */
export function eventJson(event: StreamEvent): string {
  return JSON.stringify(event);
}

/** The JSON line of a result (`--json`): the result with `"type": "result"` first. */
export function resultJson(result: TaskResult): string {
  return JSON.stringify({ type: "result", ...result });
}

/** The exit code a task's final status deserves. */
export function exitCodeFor(status: TaskStatus): number {
  switch (status) {
    case "completed":
      return ExitCode.Ok;
    case "error":
      return ExitCode.Error;
    case "timeout":
      return ExitCode.Timeout;
    case "cancelled":
      return ExitCode.Cancelled;
  }
}

/** Bytes for people: `512 B`, `1.5 KiB`, `3.2 MiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)} MiB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(1)} GiB`;
}

/** `1 call`, `2 calls`. */
function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** Token counts of a result, e.g. `15 (10 in, 5 out, 2 reasoning, 100 cache read)`. */
export function formatTokens(metrics: TaskResult["metrics"]): string {
  const t = metrics.tokens;
  if (t) {
    const total = t.input + t.output + t.reasoning;
    const parts = [`${t.input} in`, `${t.output} out`];
    if (t.reasoning > 0) parts.push(`${t.reasoning} reasoning`);
    if (t.cacheRead > 0) parts.push(`${t.cacheRead} cache read`);
    if (t.cacheWrite > 0) parts.push(`${t.cacheWrite} cache write`);
    return `${total} (${parts.join(", ")})`;
  }
  if (metrics.promptTokens !== undefined || metrics.completionTokens !== undefined) {
    const input = metrics.promptTokens ?? 0;
    const output = metrics.completionTokens ?? 0;
    return `${input + output} (${input} in, ${output} out)`;
  }
  return "-";
}

/** Cost for people: `$0.0123`, or `-` when the provider reported none. */
export function formatCost(cost: number | undefined): string {
  return cost === undefined ? "-" : `$${cost.toFixed(4)}`;
}

/**
 * The human summary of a result: status and duration, tokens, cost, tool calls, error, session,
 * workspace and changes, then the agent's final text (its first lines).
 */
export function formatResult(result: TaskResult): string {
  const m = result.metrics;
  const where = [
    m.attempts !== undefined && m.attempts > 1 ? `attempt ${m.attempts}` : undefined,
    result.workerID !== undefined ? `worker ${result.workerID}` : undefined,
  ].filter((part): part is string => part !== undefined);
  const lines = [
    `task ${result.taskID} ${result.status} in ${formatDuration(m.duration)}${where.length > 0 ? ` (${where.join(", ")})` : ""}`,
  ];
  const row = (label: string, value: string): void => void lines.push(`  ${label.padEnd(11)}${value}`);
  if (result.error !== undefined) {
    const code = result.errorCode !== undefined ? `[${result.errorCode}] ` : "";
    const retry = result.retryable === true ? " (retryable)" : "";
    row("error", `${code}${oneLine(result.error, 200)}${retry}`);
  }
  row("tokens", formatTokens(m));
  row("cost", formatCost(m.cost));
  row("tool calls", String(m.toolCalls));
  if (m.model !== undefined) row("model", m.provider !== undefined ? `${m.provider}/${m.model}` : m.model);
  if (result.session.name !== "") {
    const detail = [
      result.session.opencodeID !== "" ? `opencode ${result.session.opencodeID}` : undefined,
      plural(result.session.messageCount, "message"),
    ].filter((part): part is string => part !== undefined);
    row("session", `${result.session.name} (${detail.join(", ")})`);
  }
  if (result.workspace.path !== "") {
    const git = result.workspace.git;
    const gitText = git ? ` on ${git.branch} @${shortHash(git.commit)}${git.dirty ? " (dirty)" : ""}` : "";
    row("workspace", `${result.workspace.name} at ${result.workspace.path}${gitText}`);
  }
  if (result.changes) {
    row(
      "changes",
      `${plural(result.changes.files.length, "file")} changed, ${plural(result.changes.commits.length, "commit")}`,
    );
  }
  if (result.commit)
    row("commit", `${shortHash(result.commit.hash)} ${oneLine(result.commit.message ?? "", 60)}`);
  if (result.push)
    row("pushed", `${result.push.branch} to ${result.push.remote} @${shortHash(result.push.commit)}`);
  if (result.artifacts && result.artifacts.length > 0) {
    row("artifacts", result.artifacts.map((a) => a.key).join(", "));
  }
  const text = result.result?.trim();
  if (text) {
    const textLines = text.split("\n");
    lines.push("", ...textLines.slice(0, RESULT_TEXT_LINES));
    if (textLines.length > RESULT_TEXT_LINES) {
      lines.push(`… ${textLines.length - RESULT_TEXT_LINES} more lines (--json shows all)`);
    }
  }
  return lines.join("\n");
}

/** Left-aligned columns separated by two spaces, headers first. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, i) =>
    Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: string[]): string =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/**
 * Prints a list the way every `ls` does: one JSON line per item with --json; else a table with
 * `headers` and a row per item, or `empty` when there is nothing.
 */
export function printList<T>(
  json: boolean,
  items: readonly T[],
  empty: string,
  headers: string[],
  row: (item: T) => string[],
): void {
  if (json) {
    for (const item of items) process.stdout.write(`${JSON.stringify(item)}\n`);
    return;
  }
  if (items.length === 0) {
    process.stdout.write(`${empty}\n`);
    return;
  }
  process.stdout.write(`${formatTable(headers, items.map(row))}\n`);
}

/** Prints what a command did: `value` as one JSON line with --json, else the sentence `line`. */
export function printDone(json: boolean, value: unknown, line: string): void {
  process.stdout.write(json ? `${JSON.stringify(value)}\n` : `${line}\n`);
}

/** A worker's load: `in flight/concurrency`. */
function load(worker: WorkerStatus): string {
  return `${worker.inFlight}/${worker.concurrency}`;
}

/**
 * The human `status` report: queue depth and consumer counters, dead letters, then a table of
 * workers with their load (dead ones marked).
 */
export function formatStatus(status: DispatcherStatus): string {
  const { tasks, workers } = status;
  const alive = workers.filter((w) => w.liveness === "alive");
  const lines = [
    `namespace     ${status.org !== undefined ? `org ${status.org}` : "single-tenant"}`,
    `task stream   ${tasks.stream}: ${plural(tasks.messages, "message")} (queued and running)`,
  ];
  const c = tasks.consumer;
  lines.push(
    c
      ? `consumer      ${c.name}: ${c.pending} pending, ${c.ackPending} in flight (ack pending), ` +
          `${c.redelivered} redelivered, ${c.waiting} waiting pulls`
      : "consumer      none yet: no worker has started",
    `dead letters  ${status.deadLetters}`,
    `workers       ${alive.length} alive, ${workers.length - alive.length} dead`,
  );
  if (workers.length > 0) {
    const rows = workers.map((w) => [
      w.liveness === "dead" ? `${w.workerID} (dead)` : w.workerID,
      w.state,
      load(w),
      String(w.completed),
      String(w.failed),
      `${formatDuration(w.heartbeatAge)} ago`,
      w.tasks.length > 0 ? w.tasks.join(",") : "-",
    ]);
    lines.push("", formatTable(["WORKER", "STATE", "LOAD", "DONE", "FAILED", "HEARTBEAT", "TASKS"], rows));
  }
  return lines.join("\n");
}

/** What the live status line shows while a task is followed. */
export interface FollowProgress {
  taskID: string;
  /** `queued` until the first event, `running` after `task_started`, `cancelling` after a cancel request. */
  phase: "queued" | "running" | "cancelling";
  events: number;
  toolCalls: number;
  /** Milliseconds since following began. */
  elapsed: number;
  /** What Ctrl-C does: detach from the task, or cancel it (`--cancel-on-exit`). */
  interrupt: "detach" | "cancel";
}

/** The live status line, e.g. `t1 running · 12 events · 3 tool calls · 4.2s · Ctrl-C to detach`. */
export function formatStatusLine(p: FollowProgress): string {
  const hint =
    p.phase === "cancelling"
      ? "Ctrl-C again to detach"
      : p.interrupt === "cancel"
        ? "Ctrl-C to cancel"
        : "Ctrl-C to detach";
  return [
    `${p.taskID} ${p.phase}`,
    plural(p.events, "event"),
    plural(p.toolCalls, "tool call"),
    formatDuration(p.elapsed),
    hint,
  ].join(" · ");
}
