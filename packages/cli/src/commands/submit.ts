import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import type { Command } from "commander";
import type { TaskInput } from "@station-coding/protocol";
import { parseTask, validateFileName, validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, durationFlag } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { ExitCode } from "../exit-codes.js";
import type { FollowFlags } from "../task-follow.js";
import { followWithFlags, waitTimeoutFlag, withFollowFlags } from "../task-follow.js";

interface SubmitFlags extends FollowFlags {
  taskId?: string;
  session?: string;
  newSession?: boolean;
  workspace?: string;
  gitUrl?: string;
  branch?: string;
  timeout?: string;
  input?: string[];
  wait: boolean;
}

/** A staged input: its file name in the task's `inputs` and its content. */
interface InputFile {
  name: string;
  data: Uint8Array;
}

/** A fresh task id: `task-<time>-<random>`, sortable by submit time. */
export function generateTaskID(): string {
  return `task-${Date.now().toString(36)}-${randomBytes(4).toString("hex")}`;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Reads every `--input` file; a missing or unreadable one is a usage error naming it. */
async function readInputs(paths: string[]): Promise<InputFile[]> {
  const files: InputFile[] = [];
  const seen = new Set<string>();
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) throw new UsageError(`--input ${path}: no such file`);
    if (!info.isFile()) throw new UsageError(`--input ${path}: not a regular file`);
    const name = validateFileName("--input file name", basename(path));
    if (seen.has(name)) {
      throw new UsageError(
        `--input ${path}: another input is also named ${name} (inputs are staged by file name)`,
      );
    }
    seen.add(name);
    const data = await readFile(path).catch((err: unknown) => {
      throw new UsageError(
        `--input ${path}: cannot be read (${err instanceof Error ? err.message : String(err)})`,
      );
    });
    files.push({ name, data });
  }
  return files;
}

/** Reads the prompt from stdin when it is `-`. */
async function readPrompt(prompt: string): Promise<string> {
  if (prompt !== "-") return prompt;
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  // `echo "..." | station-coding submit -` ends with a newline that is not part of the prompt.
  return Buffer.concat(chunks)
    .toString("utf8")
    .replace(/\r?\n$/, "");
}

/** The task the flags describe. */
function taskFrom(flags: SubmitFlags, taskID: string, prompt: string, inputs: InputFile[]): TaskInput {
  if (flags.branch !== undefined && flags.gitUrl === undefined) {
    throw new UsageError("--branch: needs --git-url (the branch of which repository?)");
  }
  const timeout = durationFlag("--timeout", flags.timeout);
  if (timeout === 0) throw new UsageError("--timeout 0: must be more than 0");
  const session =
    flags.session !== undefined || flags.newSession
      ? {
          ...(flags.session !== undefined ? { name: flags.session } : {}),
          ...(flags.newSession ? { continue: false } : {}),
        }
      : undefined;
  const git =
    flags.gitUrl !== undefined
      ? { url: flags.gitUrl, ...(flags.branch !== undefined ? { branch: flags.branch } : {}) }
      : undefined;
  const workspace =
    flags.workspace !== undefined || git
      ? { ...(flags.workspace !== undefined ? { name: flags.workspace } : {}), ...(git ? { git } : {}) }
      : undefined;
  return {
    taskID,
    prompt,
    ...(session ? { session } : {}),
    ...(workspace ? { workspace } : {}),
    ...(timeout !== undefined ? { timeout } : {}),
    ...(inputs.length > 0 ? { inputs: inputs.map((file) => file.name) } : {}),
  };
}

/** `station-coding submit <prompt>`: stages inputs, submits a task and follows it to its result. */
export function registerSubmit(program: Command, run: Run): void {
  const submit = program
    .command("submit")
    .description("submit a coding task and follow its events until the result")
    .argument("<prompt>", 'the prompt ("-" reads it from stdin)')
    .option("--task-id <id>", "task id; a repeat of a submitted id runs once (default: generated)")
    .option("--session <name>", "station session to run in (default: the task id)")
    .option("--new-session", "start a new OpenCode conversation instead of continuing the session's")
    .option("--workspace <name>", "workspace directory name (default: the session name)")
    .option("--git-url <url>", "clone this repository into the workspace")
    .option("--branch <branch>", "branch of --git-url to check out")
    .option("--timeout <duration>", "task time limit, e.g. 10m (default: the worker's task timeout)")
    .option("--input <file>", "stage a file into the workspace (repeatable)", collect)
    .option("--no-wait", "print the task id and exit without waiting");
  withFollowFlags(submit, " (re-attach with `station-coding watch <taskID>`)").action(
    (prompt: string, flags: SubmitFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        const taskID = validateName("--task-id", flags.taskId ?? generateTaskID());
        const waitTimeout = waitTimeoutFlag(flags);
        if (!flags.wait && (waitTimeout !== undefined || flags.cancelOnExit)) {
          throw new UsageError(
            `${waitTimeout !== undefined ? "--wait-timeout" : "--cancel-on-exit"}: not with --no-wait`,
          );
        }
        const inputs = await readInputs(flags.input ?? []);
        const task = taskFrom(flags, taskID, await readPrompt(prompt), inputs);
        // Bad fields are usage errors before anything is staged or sent.
        parseTask(task);
        const json = all.json === true;
        return withDispatcher(all, flags.wait ? "follow" : "one-shot", async ({ dispatcher }) => {
          for (const file of inputs) await dispatcher.artifacts.stage(taskID, file.name, file.data);
          const handle = await dispatcher.submit(task);
          const duplicate = handle.receipt?.duplicate === true;
          if (!flags.wait) {
            process.stdout.write(
              json
                ? `${JSON.stringify({ type: "submitted", taskID, duplicate, streamSeq: handle.receipt?.seq })}\n`
                : `${taskID}\n`,
            );
            return ExitCode.Ok;
          }
          if (duplicate) {
            process.stderr.write(
              `task ${taskID} was already submitted (the repeat was dropped); following it\n`,
            );
          } else if (!json) {
            process.stdout.write(`submitted task ${taskID}\n`);
          }
          return followWithFlags(handle, all);
        });
      }),
  );
}
