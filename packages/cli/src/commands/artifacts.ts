import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import { listAction, oneShot } from "../command-action.js";
import type { CommonFlags, Run } from "../context.js";
import { UsageError } from "../context.js";
import { formatBytes, printDone } from "../output.js";

interface GetFlags extends CommonFlags {
  output?: string;
}

const checkTaskID = (taskID: string) => void validateName("taskID", taskID);

/** `station-coding artifacts ls|get|rm`: staged inputs, patches and artifacts in the object store. */
export function registerArtifacts(program: Command, run: Run): void {
  const artifacts = program
    .command("artifacts")
    .description("list, download and delete a task's inputs, patch and artifacts");
  const taskCommand = (name: string, description: string): Command =>
    artifacts.command(name).description(description).argument("<taskID>", "the task");

  taskCommand("ls", "list a task's objects").action(
    listAction(
      run,
      checkTaskID,
      (dispatcher, taskID: string) => dispatcher.artifacts.list(taskID),
      (taskID) => ({
        empty: `no objects for task ${taskID}`,
        headers: ["KEY", "KIND", "SIZE"],
        row: (ref) => [ref.key, ref.kind ?? "-", formatBytes(ref.size)],
      }),
    ),
  );

  artifacts
    .command("get")
    .description("download an object (to stdout, or to a file with -o)")
    .argument("<key>", "object key, as artifacts ls shows it")
    .option("-o, --output <file>", "write to this file instead of stdout")
    .action(
      oneShot(
        run,
        (key: string) => {
          if (key.trim() === "") throw new UsageError("<key>: must not be empty");
        },
        async (dispatcher, flags: GetFlags, key: string) => {
          const data = await dispatcher.artifacts.get(key);
          if (flags.output === undefined) {
            process.stdout.write(data);
            return;
          }
          await writeFile(flags.output, data);
          printDone(
            flags.json === true,
            { key, file: flags.output, size: data.byteLength },
            `wrote ${key} to ${flags.output} (${formatBytes(data.byteLength)})`,
          );
        },
      ),
    );

  taskCommand("rm", "delete every object of a task").action(
    oneShot(run, checkTaskID, async (dispatcher, flags, taskID: string) => {
      const removed = await dispatcher.artifacts.delete(taskID);
      printDone(
        flags.json === true,
        { taskID, removed },
        `removed ${removed} object${removed === 1 ? "" : "s"} of task ${taskID}`,
      );
    }),
  );
}
