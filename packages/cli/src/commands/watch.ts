import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import type { FollowFlags } from "../task-follow.js";
import { followWithFlags, waitTimeoutFlag, withFollowFlags } from "../task-follow.js";

/** `station-coding watch <taskID>`: replays a task's events from seq 1 and follows it to its result. */
export function registerWatch(program: Command, run: Run): void {
  withFollowFlags(
    program
      .command("watch")
      .description("replay a task's events from the start, then follow it until the result")
      .argument("<taskID>", "the task to follow"),
  ).action((taskID: string, flags: FollowFlags, cmd: Command) =>
    run(async () => {
      const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
      validateName("taskID", taskID);
      waitTimeoutFlag(all);
      return withDispatcher(all, "follow", async ({ dispatcher }) => {
        if (all.json !== true) process.stdout.write(`watching task ${taskID}\n`);
        return followWithFlags(dispatcher.task(taskID), all);
      });
    }),
  );
}
