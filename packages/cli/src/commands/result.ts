import type { Command } from "commander";
import { WaitTimeoutError } from "@station-coding/dispatcher";
import type { TaskResult } from "@station-coding/protocol";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { durationFlag } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { ExitCode } from "../exit-codes.js";
import { exitCodeFor, formatResult, resultJson } from "../output.js";

interface ResultFlags extends CommonFlags {
  wait?: boolean;
  waitTimeout?: string;
}

/** `station-coding result <taskID>`: prints a task's stored result, optionally waiting for it. */
export function registerResult(program: Command, run: Run): void {
  program
    .command("result")
    .description("print a task's result; exits with the code of its status")
    .argument("<taskID>", "the task")
    .option("--wait", "wait for the result when the task has not finished")
    .option("--wait-timeout <duration>", "with --wait: stop waiting after this long (implies --wait)")
    .addHelpText(
      "after",
      "\nExit codes: 0 completed, 1 error, 2 usage, 3 timed out, 4 cancelled,\n" +
        "5 no result yet (the task is still queued or running; without --wait, or --wait-timeout ran out).",
    )
    .action((taskID: string, flags: ResultFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        validateName("taskID", taskID);
        const waitTimeout = durationFlag("--wait-timeout", flags.waitTimeout);
        const wait = flags.wait === true || waitTimeout !== undefined;
        return withDispatcher(all, wait ? "follow" : "one-shot", async ({ dispatcher }) => {
          const handle = dispatcher.task(taskID);
          let result: TaskResult;
          if (wait) {
            try {
              result = await handle.result(waitTimeout !== undefined ? { timeout: waitTimeout } : {});
            } catch (err) {
              if (!(err instanceof WaitTimeoutError)) throw err;
              process.stderr.write(`${err.message}\n`);
              return ExitCode.Pending;
            }
          } else {
            const progress = await handle.state();
            if (!progress.result) {
              process.stderr.write(
                `task ${taskID} has no result yet: ${progress.detail} (wait for it with --wait)\n`,
              );
              return ExitCode.Pending;
            }
            result = progress.result;
          }
          process.stdout.write(`${all.json === true ? resultJson(result) : formatResult(result)}\n`);
          return exitCodeFor(result.status);
        });
      }),
    );
}
