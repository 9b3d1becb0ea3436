import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { reattachCommand } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { formatTable, oneLine } from "../output.js";

/** `station-coding dlq ls|replay`: tasks that will not be retried, and their replay. */
export function registerDlq(program: Command, run: Run): void {
  const dlq = program.command("dlq").description("list dead-lettered tasks and run them again");

  dlq
    .command("ls")
    .description("list dead letters, oldest first")
    .action((_flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const letters = await dispatcher.deadLetters.list();
          if (all.json === true) {
            for (const letter of letters) process.stdout.write(`${JSON.stringify(letter)}\n`);
            return;
          }
          if (letters.length === 0) {
            process.stdout.write("no dead letters\n");
            return;
          }
          const rows = letters.map((l) => [
            l.taskID,
            String(l.attempts),
            l.errorCode ?? "-",
            l.deadAt,
            oneLine(l.reason, 80),
          ]);
          process.stdout.write(`${formatTable(["TASK", "ATTEMPTS", "CODE", "DEAD AT", "REASON"], rows)}\n`);
        });
      }),
    );

  dlq
    .command("replay")
    .description("run a dead-lettered task again (its result, dead letter and retry count are cleared)")
    .argument("<taskID>", "the task")
    .action((taskID: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("taskID", taskID);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const letter = await dispatcher.deadLetters.replay(taskID);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ taskID, replayed: true, subject: letter.subject })}\n`
              : `replayed task ${taskID}; follow it with: ${reattachCommand(all, taskID)}\n`,
          );
        });
      }),
    );
}
