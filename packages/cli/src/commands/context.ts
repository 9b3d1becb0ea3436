import type { Command } from "commander";
import type { AgentContext } from "@station-coding/protocol";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, durationFlag } from "../context.js";
import { listAction, oneShot } from "../command-action.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { oneLine, printDone } from "../output.js";

interface SetFlags extends CommonFlags {
  ttl?: string;
}

/** A value given on the command line: JSON when it parses as JSON, else the string itself. */
export function parseContextValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** A value for people: strings as they are, anything else as JSON. */
function showValue(value: unknown, pretty: boolean): string {
  if (typeof value === "string") return value;
  return pretty ? JSON.stringify(value, null, 2) : JSON.stringify(value);
}

function check(agentID: string, key: string): void {
  validateName("agentID", agentID);
  validateName("key", key);
}

/** `station-coding context get|set|rm|ls`: agent context entries. */
export function registerContext(program: Command, run: Run): void {
  const context = program.command("context").description("read and write agent context entries");
  const entryCommand = (name: string, description: string): Command =>
    context
      .command(name)
      .description(description)
      .argument("<agentID>", "agent id")
      .argument("<key>", "entry key");

  entryCommand("get", "print an entry's value (strings as they are, other values as JSON)").action(
    oneShot(run, check, async (dispatcher, flags, agentID: string, key: string) => {
      const entry = await dispatcher.context.get(agentID, key);
      if (!entry) {
        throw new StationError(ErrorCodes.InvalidName, `context ${agentID}.${key}: not found (or expired)`);
      }
      process.stdout.write(`${flags.json === true ? JSON.stringify(entry) : showValue(entry.value, true)}\n`);
    }),
  );

  entryCommand("set", "store a value: JSON when it parses as JSON, else the string")
    .argument("<value>", "the value, e.g. '{\"plan\":1}', 42 or some text")
    .option("--ttl <duration>", "time to live, e.g. 10m (default: no expiry)")
    .action((agentID: string, key: string, value: string, flags: SetFlags, cmd: Command) =>
      run(async () => {
        const all = { ...cmd.optsWithGlobals<CommonFlags>(), ...flags };
        check(agentID, key);
        const ttl = durationFlag("--ttl", flags.ttl);
        if (ttl === 0) throw new UsageError("--ttl 0: must be more than 0 (leave it out for no expiry)");
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const entry = await dispatcher.context.set(
            agentID,
            key,
            parseContextValue(value),
            ttl !== undefined ? { ttl } : {},
          );
          const expires = entry.expiresAt !== undefined ? ` (expires ${entry.expiresAt})` : "";
          printDone(all.json === true, entry, `set ${agentID}.${key}${expires}`);
        });
      }),
    );

  entryCommand("rm", "remove an entry").action(
    oneShot(run, check, async (dispatcher, flags, agentID: string, key: string) => {
      await dispatcher.context.delete(agentID, key);
      printDone(flags.json === true, { agentID, key, removed: true }, `removed ${agentID}.${key}`);
    }),
  );

  context
    .command("ls")
    .description("list live entries, of one agent or of all")
    .argument("[agentID]", "agent id")
    .action(
      listAction(
        run,
        (agentID: string | undefined) => {
          if (agentID !== undefined) validateName("agentID", agentID);
        },
        (dispatcher, agentID): Promise<AgentContext[]> => dispatcher.context.list(agentID),
        () => ({
          empty: "no context entries",
          headers: ["AGENT", "KEY", "VALUE", "UPDATED", "EXPIRES"],
          row: (e) => [
            e.agentID,
            e.key,
            oneLine(showValue(e.value, false), 50),
            e.updated,
            e.expiresAt ?? "-",
          ],
        }),
      ),
    );
}
