import type { Command } from "commander";
import type { TaskHandle } from "@station-coding/dispatcher";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { formatDuration } from "@station-coding/protocol";
import type { CommonFlags } from "./context.js";
import { durationFlag, reattachCommand } from "./context.js";
import { ExitCode } from "./exit-codes.js";
import type { FollowProgress } from "./output.js";
import { eventJson, exitCodeFor, formatEvent, formatResult, formatStatusLine, resultJson } from "./output.js";
import { StatusLine } from "./status-line.js";

/** How long `--cancel-on-exit` waits for the cancelled result before giving up. */
export const CANCEL_WAIT_MS = 30_000;

/** Options of {@link followTask}. */
export interface FollowOptions {
  /** One JSON object per line (each event, then the result) instead of human lines. */
  json: boolean;
  /** Client-side wait limit in ms; the task goes on after it (exit {@link ExitCode.Pending}). */
  waitTimeout?: number;
  /** Cancel the task when following stops early (Ctrl-C, SIGTERM, wait limit) and wait for its result. */
  cancelOnExit: boolean;
  /** The command that re-attaches, shown when following stops early. */
  reattach: string;
}

/** The flags of the commands that follow a task to its result (`submit`, `watch`). */
export interface FollowFlags extends CommonFlags {
  waitTimeout?: string;
  cancelOnExit?: boolean;
}

/**
 * Adds `--wait-timeout` and `--cancel-on-exit` to a command that follows a task, and what its exit
 * codes mean; `detached` ends the line about Ctrl-C.
 */
export function withFollowFlags(command: Command, detached = ""): Command {
  return command
    .option("--wait-timeout <duration>", "stop waiting after this long (exit 5; the task goes on)")
    .option(
      "--cancel-on-exit",
      "on Ctrl-C, SIGTERM or --wait-timeout, cancel the task and wait for its result",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 completed, 1 error, 2 usage, 3 timed out, 4 cancelled, 5 still running\n" +
        `(--wait-timeout), 130 detached by Ctrl-C${detached}.`,
    );
}

/** The `--wait-timeout` of a following command, in ms (a usage error when it is no duration). */
export function waitTimeoutFlag(flags: FollowFlags): number | undefined {
  return durationFlag("--wait-timeout", flags.waitTimeout);
}

/** Follows a task as its command's flags say, then returns the exit code (see {@link followTask}). */
export function followWithFlags(handle: TaskHandle, flags: FollowFlags): Promise<number> {
  const waitTimeout = waitTimeoutFlag(flags);
  return followTask(handle, {
    json: flags.json === true,
    ...(waitTimeout !== undefined ? { waitTimeout } : {}),
    cancelOnExit: flags.cancelOnExit === true,
    reattach: reattachCommand(flags, handle.taskID),
  });
}

/**
 * Prints a followed task: human lines (with a live status line on a TTY) or JSON lines on
 * stdout; notes for people on stderr.
 */
export class TaskPrinter {
  private readonly progress: FollowProgress;
  private readonly started = Date.now();
  private readonly status: StatusLine | undefined;

  constructor(
    taskID: string,
    private readonly json: boolean,
    interrupt: FollowProgress["interrupt"],
    private readonly stdout: NodeJS.WriteStream = process.stdout,
    private readonly stderr: NodeJS.WriteStream = process.stderr,
  ) {
    this.progress = { taskID, phase: "queued", events: 0, toolCalls: 0, elapsed: 0, interrupt };
    if (!json && stdout.isTTY) {
      this.status = new StatusLine(stdout, () =>
        formatStatusLine({ ...this.progress, elapsed: Date.now() - this.started }),
      );
    }
  }

  /** Starts the live status line (TTY only). */
  start(): void {
    this.status?.start();
  }

  /** Prints an event and counts it for the status line. */
  event(event: StreamEvent): void {
    this.progress.events += 1;
    if (event.type === "tool_start") this.progress.toolCalls += 1;
    if (event.type === "task_started" && this.progress.phase === "queued") this.progress.phase = "running";
    this.out(this.json ? eventJson(event) : formatEvent(event));
  }

  /** Prints the result: its JSON line, or the human summary. */
  result(result: TaskResult): void {
    this.stop();
    this.out(this.json ? resultJson(result) : formatResult(result));
  }

  /** Shows that a cancel was requested. */
  cancelling(): void {
    this.progress.phase = "cancelling";
    this.status?.draw();
  }

  /** A line for people, on stderr. */
  note(line: string): void {
    if (this.status) this.status.print(line, this.stderr);
    else this.stderr.write(`${line}\n`);
  }

  /** Erases the status line for good. */
  stop(): void {
    this.status?.stop();
  }

  private out(line: string): void {
    if (this.status) this.status.print(line);
    else this.stdout.write(`${line}\n`);
  }
}

type Ending = { kind: "signal"; code: number } | { kind: "deadline" } | { kind: "error"; error: unknown };

/**
 * Follows a task until its result: prints every event from seq 1 and then the result, and
 * returns the exit code of the result's status.
 *
 * The first SIGINT (SIGTERM) detaches, prints how to re-attach and returns 130 (143); with
 * `cancelOnExit` it cancels the task instead and waits for the cancelled result (a second signal
 * detaches). When `waitTimeout` runs out it says where the task stands and returns
 * {@link ExitCode.Pending}.
 */
export async function followTask(handle: TaskHandle, options: FollowOptions): Promise<number> {
  const { taskID } = handle;
  const started = Date.now();
  const printer = new TaskPrinter(taskID, options.json, options.cancelOnExit ? "cancel" : "detach");
  const stop = new AbortController();
  let ending: Ending | undefined;
  let cancelRequested = false;
  let cancelTimer: NodeJS.Timeout | undefined;
  const end = (why: Ending): void => {
    ending ??= why;
    stop.abort();
  };

  const requestCancel = (why: string): void => {
    cancelRequested = true;
    printer.cancelling();
    printer.note(`cancelling task ${taskID} (${why}); waiting for its result (Ctrl-C again to detach)`);
    handle.cancel(`cancelled from the station-coding CLI (${why})`).then(
      () => {
        cancelTimer = setTimeout(() => end({ kind: "deadline" }), CANCEL_WAIT_MS);
      },
      (error: unknown) => end({ kind: "error", error }),
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    if (options.cancelOnExit && !cancelRequested) {
      requestCancel(signal === "SIGINT" ? "Ctrl-C" : signal);
      return;
    }
    end({ kind: "signal", code: signal === "SIGINT" ? ExitCode.Interrupted : ExitCode.Terminated });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const waitTimeout = options.waitTimeout;
  const deadline =
    waitTimeout === undefined
      ? undefined
      : setTimeout(() => {
          const why = `--wait-timeout ${formatDuration(waitTimeout)} ran out`;
          if (options.cancelOnExit && !cancelRequested) requestCancel(why);
          else end({ kind: "deadline" });
        }, waitTimeout);

  printer.start();
  try {
    for await (const event of handle.events({ signal: stop.signal })) printer.event(event);
    if (!ending) {
      const result = await handle.result();
      printer.result(result);
      return exitCodeFor(result.status);
    }
    printer.stop();
    switch (ending.kind) {
      case "signal":
        printer.note(`detached from task ${taskID}; it goes on. Re-attach with: ${options.reattach}`);
        return ending.code;
      case "error":
        throw ending.error;
      case "deadline": {
        const progress = await handle.state();
        if (progress.result) {
          printer.result(progress.result);
          return exitCodeFor(progress.result.status);
        }
        printer.note(
          `task ${taskID}: no result after waiting ${formatDuration(Date.now() - started)}; ${progress.detail}. ` +
            `Re-attach with: ${options.reattach}`,
        );
        return ExitCode.Pending;
      }
    }
  } finally {
    printer.stop();
    clearTimeout(deadline);
    clearTimeout(cancelTimer);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
