import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { durationFlag, reattachCommand } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { followTask } from "../task-follow.js";

interface WatchFlags extends CommonFlags {
  waitTimeout?: string;
  cancelOnExit?: boolean;
}

/** `station-coding watch <taskID>`: replays a task's events from seq 1 and follows it to its result. */
export function registerWatch(program: Command, run: Run): void {
  program
    .command("watch")
    .description("replay a task's events from the start, then follow it until the result")
    .argument("<taskID>", "the task to follow")
    .option("--wait-timeout <duration>", "stop waiting after this long (exit 5; the task goes on)")
    .option(
      "--cancel-on-exit",
      "on Ctrl-C, SIGTERM or --wait-timeout, cancel the task and wait for its result",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 completed, 1 error, 2 usage, 3 timed out, 4 cancelled, 5 still running\n" +
        "(--wait-timeout), 130 detached by Ctrl-C.",
    )
    .action((taskID: string, flags: WatchFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        validateName("taskID", taskID);
        const waitTimeout = durationFlag("--wait-timeout", flags.waitTimeout);
        return withDispatcher(all, "follow", async ({ dispatcher }) => {
          if (all.json !== true) process.stdout.write(`watching task ${taskID}\n`);
          return followTask(dispatcher.task(taskID), {
            json: all.json === true,
            ...(waitTimeout !== undefined ? { waitTimeout } : {}),
            cancelOnExit: flags.cancelOnExit === true,
            reattach: reattachCommand(all, taskID),
          });
        });
      }),
    );
}
