import type { Command } from "commander";
import type { CommonFlags, Run } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { formatStatus } from "../output.js";

/** `station-coding status`: queue depth, consumer counters, workers and dead letters. */
export function registerStatus(program: Command, run: Run): void {
  program
    .command("status")
    .description("show queue depth, pending and in-flight tasks, workers with their load, dead letters")
    .action((_flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const status = await dispatcher.status();
          process.stdout.write(`${all.json === true ? JSON.stringify(status) : formatStatus(status)}\n`);
        });
      }),
    );
}
