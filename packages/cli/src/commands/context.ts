import type { Command } from "commander";
import type { AgentContext } from "@station-coding/protocol";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { UsageError, durationFlag } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { formatTable, oneLine } from "../output.js";

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

  context
    .command("get")
    .description("print an entry's value (strings as they are, other values as JSON)")
    .argument("<agentID>", "agent id")
    .argument("<key>", "entry key")
    .action((agentID: string, key: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        check(agentID, key);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const entry = await dispatcher.context.get(agentID, key);
          if (!entry) {
            throw new StationError(
              ErrorCodes.InvalidName,
              `context ${agentID}.${key}: not found (or expired)`,
            );
          }
          process.stdout.write(
            `${all.json === true ? JSON.stringify(entry) : showValue(entry.value, true)}\n`,
          );
        });
      }),
    );

  context
    .command("set")
    .description("store a value: JSON when it parses as JSON, else the string")
    .argument("<agentID>", "agent id")
    .argument("<key>", "entry key")
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
          process.stdout.write(
            all.json === true ? `${JSON.stringify(entry)}\n` : `set ${agentID}.${key}${expires}\n`,
          );
        });
      }),
    );

  context
    .command("rm")
    .description("remove an entry")
    .argument("<agentID>", "agent id")
    .argument("<key>", "entry key")
    .action((agentID: string, key: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        check(agentID, key);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          await dispatcher.context.delete(agentID, key);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ agentID, key, removed: true })}\n`
              : `removed ${agentID}.${key}\n`,
          );
        });
      }),
    );

  context
    .command("ls")
    .description("list live entries, of one agent or of all")
    .argument("[agentID]", "agent id")
    .action((agentID: string | undefined, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        if (agentID !== undefined) validateName("agentID", agentID);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const entries: AgentContext[] = await dispatcher.context.list(agentID);
          if (all.json === true) {
            for (const e of entries) process.stdout.write(`${JSON.stringify(e)}\n`);
            return;
          }
          if (entries.length === 0) {
            process.stdout.write("no context entries\n");
            return;
          }
          const rows = entries.map((e) => [
            e.agentID,
            e.key,
            oneLine(showValue(e.value, false), 50),
            e.updated,
            e.expiresAt ?? "-",
          ]);
          process.stdout.write(`${formatTable(["AGENT", "KEY", "VALUE", "UPDATED", "EXPIRES"], rows)}\n`);
        });
      }),
    );
}
