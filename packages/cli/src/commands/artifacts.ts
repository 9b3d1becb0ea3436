import { writeFile } from "node:fs/promises";
import type { Command } from "commander";
import { validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { UsageError } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { formatBytes, formatTable } from "../output.js";

interface GetFlags extends CommonFlags {
  output?: string;
}

/** `station-coding artifacts ls|get|rm`: staged inputs, patches and artifacts in the object store. */
export function registerArtifacts(program: Command, run: Run): void {
  const artifacts = program
    .command("artifacts")
    .description("list, download and delete a task's inputs, patch and artifacts");

  artifacts
    .command("ls")
    .description("list a task's objects")
    .argument("<taskID>", "the task")
    .action((taskID: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("taskID", taskID);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const refs = await dispatcher.artifacts.list(taskID);
          if (all.json === true) {
            for (const ref of refs) process.stdout.write(`${JSON.stringify(ref)}\n`);
            return;
          }
          if (refs.length === 0) {
            process.stdout.write(`no objects for task ${taskID}\n`);
            return;
          }
          const rows = refs.map((ref) => [ref.key, ref.kind ?? "-", formatBytes(ref.size)]);
          process.stdout.write(`${formatTable(["KEY", "KIND", "SIZE"], rows)}\n`);
        });
      }),
    );

  artifacts
    .command("get")
    .description("download an object (to stdout, or to a file with -o)")
    .argument("<key>", "object key, as artifacts ls shows it")
    .option("-o, --output <file>", "write to this file instead of stdout")
    .action((key: string, flags: GetFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        if (key.trim() === "") throw new UsageError("<key>: must not be empty");
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const data = await dispatcher.artifacts.get(key);
          if (flags.output === undefined) {
            process.stdout.write(data);
            return;
          }
          await writeFile(flags.output, data);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ key, file: flags.output, size: data.byteLength })}\n`
              : `wrote ${key} to ${flags.output} (${formatBytes(data.byteLength)})\n`,
          );
        });
      }),
    );

  artifacts
    .command("rm")
    .description("delete every object of a task")
    .argument("<taskID>", "the task")
    .action((taskID: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("taskID", taskID);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const removed = await dispatcher.artifacts.delete(taskID);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ taskID, removed })}\n`
              : `removed ${removed} object${removed === 1 ? "" : "s"} of task ${taskID}\n`,
          );
        });
      }),
    );
}
