import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { ExitCode } from "../exit-codes.js";

interface CancelFlags extends CommonFlags {
  reason?: string;
}

/** `station-coding cancel <taskID>`: asks for a task to be cancelled. */
export function registerCancel(program: Command, run: Run): void {
  program
    .command("cancel")
    .description("cancel a task: a running one stops, a queued one is cancelled when a worker picks it up")
    .argument("<taskID>", "the task")
    .option("--reason <text>", "why, recorded with the request")
    .action((taskID: string, flags: CancelFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        validateName("taskID", taskID);
        return withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const handle = dispatcher.task(taskID);
          const progress = await handle.state();
          if (progress.result) {
            const line = `task ${taskID} already finished with status ${progress.result.status}; nothing to cancel`;
            process.stdout.write(
              all.json === true
                ? `${JSON.stringify({ taskID, cancelRequested: false, status: progress.result.status })}\n`
                : `${line}\n`,
            );
            return ExitCode.Ok;
          }
          await handle.cancel(flags.reason);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ taskID, cancelRequested: true, phase: progress.phase })}\n`
              : `cancel requested for task ${taskID} (it was ${progress.phase})\n`,
          );
          return ExitCode.Ok;
        });
      }),
    );
}
