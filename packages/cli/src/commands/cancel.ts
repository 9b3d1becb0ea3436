import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import { oneShot } from "../command-action.js";
import type { CommonFlags, Run } from "../context.js";
import { printDone } from "../output.js";

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
    .action(
      oneShot(
        run,
        (taskID: string) => void validateName("taskID", taskID),
        async (dispatcher, flags: CancelFlags, taskID: string) => {
          const handle = dispatcher.task(taskID);
          const progress = await handle.state();
          if (progress.result) {
            printDone(
              flags.json === true,
              { taskID, cancelRequested: false, status: progress.result.status },
              `task ${taskID} already finished with status ${progress.result.status}; nothing to cancel`,
            );
            return;
          }
          await handle.cancel(flags.reason);
          printDone(
            flags.json === true,
            { taskID, cancelRequested: true, phase: progress.phase },
            `cancel requested for task ${taskID} (it was ${progress.phase})`,
          );
        },
      ),
    );
}
