// Helpers for the workspace and git tests: tasks built without the schema (so hostile values reach
// the worker's own checks), captured events and log lines, and a git wrapper that records argv.
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import type { EventDraft, GitSpec, ResolvedTask } from "@station-coding/protocol";
import { uniqueName } from "@station-coding/testkit";
import { pino } from "pino";
import type { Logger } from "pino";

/** Overrides of {@link makeTask}. */
export interface TaskOverrides {
  taskID?: string;
  op?: ResolvedTask["op"];
  name?: string;
  git?: GitSpec;
  scope?: ResolvedTask["workspace"]["scope"];
  scopeID?: string;
  cleanup?: ResolvedTask["workspace"]["cleanup"];
}

/** A resolved task as the runner would hand it over. */
export function makeTask(o: TaskOverrides = {}): ResolvedTask {
  const taskID = o.taskID ?? uniqueName("task");
  const name = o.name ?? uniqueName("ws");
  return {
    taskID,
    op: o.op ?? "code",
    prompt: "do it",
    session: { name, continue: true },
    workspace: {
      name,
      scope: o.scope ?? "agent",
      ...(o.git ? { git: o.git } : {}),
      ...(o.scopeID !== undefined ? { scopeID: o.scopeID } : {}),
      ...(o.cleanup !== undefined ? { cleanup: o.cleanup } : {}),
    },
    callback: { streamSubject: `s.${taskID}`, resultSubject: `r.${taskID}` },
    agentID: name,
  };
}

/** Collects emitted events. */
export function eventSink(): { events: EventDraft[]; emit: (e: EventDraft) => void } {
  const events: EventDraft[] = [];
  return { events, emit: (e) => events.push(e) };
}

/** A pino logger at debug level writing into `lines` (no redaction: it shows what the code logs). */
export function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString("utf8"));
      done();
    },
  });
  return { logger: pino({ level: "debug" }, stream), lines };
}

/** A token that looks like nothing the redactor's patterns know. */
export function makeToken(): string {
  return `tok${randomBytes(16).toString("hex")}`;
}

/** A wrapper around git that appends its argv to a log file: proves no token reaches argv. */
export async function argvSpy(): Promise<{
  binary: string;
  log: () => Promise<string>;
  dispose(): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "git-spy-"));
  const logFile = join(dir, "argv.log");
  const binary = join(dir, "git");
  await writeFile(logFile, "");
  const realGit = "git";
  await writeFile(binary, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${logFile}'\nexec ${realGit} "$@"\n`);
  await chmod(binary, 0o755);
  return {
    binary,
    log: () => readFile(logFile, "utf8"),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Counts the occurrences of `needle` in `haystack`. */
export function occurrences(haystack: string | Uint8Array, needle: string): number {
  const text = typeof haystack === "string" ? haystack : Buffer.from(haystack).toString("latin1");
  return text.split(needle).length - 1;
}
