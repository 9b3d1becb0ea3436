import type { Command } from "commander";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";
import type { CommonFlags, Run } from "../context.js";
import { withDispatcher } from "../dispatcher-connection.js";
import { formatTable } from "../output.js";

/** `station-coding sessions ls|show|rm`: the station sessions of the namespace. */
export function registerSessions(program: Command, run: Run): void {
  const sessions = program.command("sessions").description("list, show and remove station sessions");

  sessions
    .command("ls")
    .description("list sessions")
    .action((_flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const list = await dispatcher.sessions.list();
          if (all.json === true) {
            for (const s of list) process.stdout.write(`${JSON.stringify(s)}\n`);
            return;
          }
          if (list.length === 0) {
            process.stdout.write("no sessions\n");
            return;
          }
          const rows = list.map((s) => [
            s.sessionName,
            s.workspaceName,
            String(s.messageCount),
            s.lastUsed,
            s.lastTaskID ?? "-",
            s.workerID ?? "-",
          ]);
          process.stdout.write(
            `${formatTable(["SESSION", "WORKSPACE", "MESSAGES", "LAST USED", "LAST TASK", "WORKER"], rows)}\n`,
          );
        });
      }),
    );

  sessions
    .command("show")
    .description("show one session")
    .argument("<name>", "session name")
    .action((name: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("session", name);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          const s = await dispatcher.sessions.get(name);
          if (!s) throw notFound(name);
          if (all.json === true) {
            process.stdout.write(`${JSON.stringify(s)}\n`);
            return;
          }
          const rows: [string, string | undefined][] = [
            ["session", s.sessionName],
            ["opencode", s.opencodeID],
            ["workspace", `${s.workspaceName} at ${s.workspacePath}`],
            ["messages", String(s.messageCount)],
            ["created", s.created],
            ["last used", s.lastUsed],
            ["last task", s.lastTaskID],
            ["worker", s.workerID],
            ["git", s.git ? `${s.git.url} ${s.git.branch} @${s.git.lastCommit.slice(0, 12)}` : undefined],
            [
              "scope",
              s.scope !== undefined
                ? `${s.scope}${s.scopeID !== undefined ? ` ${s.scopeID}` : ""}`
                : undefined,
            ],
            ["org", s.org],
            ["export", s.exportKey],
          ];
          for (const [label, value] of rows) {
            if (value !== undefined) process.stdout.write(`${label.padEnd(11)}${value}\n`);
          }
        });
      }),
    );

  sessions
    .command("rm")
    .description("remove a session record (its workspace is left to the worker's cleanup policy)")
    .argument("<name>", "session name")
    .action((name: string, _flags: CommonFlags, cmd: Command) =>
      run(async () => {
        const all = cmd.optsWithGlobals<CommonFlags>();
        validateName("session", name);
        await withDispatcher(all, "one-shot", async ({ dispatcher }) => {
          if (!(await dispatcher.sessions.get(name))) throw notFound(name);
          await dispatcher.sessions.delete(name);
          process.stdout.write(
            all.json === true
              ? `${JSON.stringify({ session: name, removed: true })}\n`
              : `removed session ${name}\n`,
          );
        });
      }),
    );
}

function notFound(name: string): StationError {
  return new StationError(ErrorCodes.InvalidName, `session ${name}: not found (list them with sessions ls)`);
}
