import type { Command } from "commander";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import type { CommonFlags, Run } from "./context.js";
import { withDispatcher } from "./dispatcher-connection.js";
import { printList } from "./output.js";

/**
 * The action of a subcommand that makes one request with a one-shot dispatcher: `check` validates
 * the positional arguments (a usage error before anything connects), then `body` runs with the
 * dispatcher and the flags (the command's own merged over the global ones).
 *
 * @example
 * .argument("<taskID>").action(oneShot(run, checkTaskID, async (dispatcher, flags, taskID) => {...}))
 */
export function oneShot<A extends (string | undefined)[], F extends CommonFlags = CommonFlags>(
  run: Run,
  check: (...args: A) => void,
  body: (dispatcher: CodingDispatcher, flags: F, ...args: A) => Promise<void>,
): (...params: unknown[]) => Promise<void> {
  return (...params) =>
    run(async () => {
      const cmd = params.at(-1) as Command;
      const flags = { ...cmd.optsWithGlobals<CommonFlags>(), ...(params.at(-2) as object) } as F;
      const args = params.slice(0, -2) as A;
      check(...args);
      await withDispatcher(flags, "one-shot", ({ dispatcher }) => body(dispatcher, flags, ...args));
    });
}

/** The `check` of a subcommand without positional arguments. */
export function noArguments(): void {}

/** How an `ls` shows its items: the table's headers and rows, and the line when there are none. */
export interface ListView<T> {
  empty: string;
  headers: string[];
  row: (item: T) => string[];
}

/**
 * The action of an `ls` subcommand: `list` fetches the items with a one-shot dispatcher; they are
 * printed as JSON lines with --json, else as a table (see {@link printList}).
 */
export function listAction<A extends (string | undefined)[], T>(
  run: Run,
  check: (...args: A) => void,
  list: (dispatcher: CodingDispatcher, ...args: A) => Promise<T[]>,
  view: (...args: A) => ListView<T>,
): (...params: unknown[]) => Promise<void> {
  return oneShot<A>(run, check, async (dispatcher, flags, ...args) => {
    const { empty, headers, row } = view(...args);
    printList(flags.json === true, await list(dispatcher, ...args), empty, headers, row);
  });
}
