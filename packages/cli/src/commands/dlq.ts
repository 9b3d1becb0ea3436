import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { ReplayCredentials } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, reattachCommand } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { listAction, noArguments } from "../command-action.js";
import { oneLine, printDone } from "../output.js";

interface ReplayFlags extends CommonFlags {
  tokenFromKv?: string;
  gitTokenEnv?: string;
}

/** The replay's git credentials from its flags; the token itself only ever comes from the environment. */
function replayCredentials(flags: ReplayFlags): ReplayCredentials {
  if (flags.tokenFromKv !== undefined && flags.gitTokenEnv !== undefined) {
    throw new UsageError("give --token-from-kv or --git-token-env, not both");
  }
  if (flags.tokenFromKv !== undefined)
    return { tokenFromKV: validateName("--token-from-kv", flags.tokenFromKv) };
  if (flags.gitTokenEnv === undefined) return {};
  const token = process.env[flags.gitTokenEnv];
  if (token === undefined || token === "") {
    throw new UsageError(`--git-token-env ${flags.gitTokenEnv}: that environment variable is not set`);
  }
  return { token };
}

/** `station-coding dlq ls|replay`: tasks that will not be retried, and their replay. */
export function registerDlq(program: Command, run: Run): void {
  const dlq = program.command("dlq").description("list dead-lettered tasks and run them again");

  dlq
    .command("ls")
    .description("list dead letters, oldest first")
    .action(
      listAction(
        run,
        noArguments,
        (dispatcher) => dispatcher.deadLetters.list(),
        () => ({
          empty: "no dead letters",
          headers: ["TASK", "ATTEMPTS", "CODE", "DEAD AT", "REASON"],
          row: (l) => [
            l.taskID,
            String(l.attempts),
            l.errorCode ?? "-",
            l.deadAt,
            oneLine(`${l.gitTokenRemoved === true ? "[git token removed] " : ""}${l.reason}`, 80),
          ],
        }),
      ),
    );

  dlq
    .command("replay")
    .description("run a dead-lettered task again (its result, dead letter and retry count are cleared)")
    .argument("<taskID>", "the task")
    .option(
      "--token-from-kv <key>",
      "for a task whose inline git token was removed: the secrets-bucket key that holds the token",
    )
    .option(
      "--git-token-env <name>",
      "for a task whose inline git token was removed: env var holding the token (prefer --token-from-kv)",
    )
    .action((taskID: string, _flags: ReplayFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<ReplayFlags>();
        validateName("taskID", taskID);
        const credentials = replayCredentials(all);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const letter = await dispatcher.deadLetters.replay(taskID, credentials);
          printDone(
            all.json === true,
            { taskID, replayed: true, subject: letter.subject },
            `replayed task ${taskID}; follow it with: ${reattachCommand(all, taskID)}`,
          );
        });
      }),
    );
}
