import type { Command } from "commander";
import { ErrorCodes, StationError, validateName } from "@station-coding/protocol";
import { listAction, noArguments, oneShot } from "../command-action.js";
import type { Run } from "../context.js";
import { printDone } from "../output.js";

const checkSession = (name: string) => void validateName("session", name);

/** `station-coding sessions ls|show|rm`: the station sessions of the namespace. */
export function registerSessions(program: Command, run: Run): void {
  const sessions = program.command("sessions").description("list, show and remove station sessions");
  const sessionCommand = (name: string, description: string): Command =>
    sessions.command(name).description(description).argument("<name>", "session name");

  sessions
    .command("ls")
    .description("list sessions")
    .action(
      listAction(
        run,
        noArguments,
        (dispatcher) => dispatcher.sessions.list(),
        () => ({
          empty: "no sessions",
          headers: ["SESSION", "WORKSPACE", "MESSAGES", "LAST USED", "LAST TASK", "WORKER"],
          row: (s) => [
            s.sessionName,
            s.workspaceName,
            String(s.messageCount),
            s.lastUsed,
            s.lastTaskID ?? "-",
            s.workerID ?? "-",
          ],
        }),
      ),
    );

  sessionCommand("show", "show one session").action(
    oneShot(run, checkSession, async (dispatcher, flags, name: string) => {
      const s = await dispatcher.sessions.get(name);
      if (!s) throw notFound(name);
      if (flags.json === true) {
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
          s.scope !== undefined ? `${s.scope}${s.scopeID !== undefined ? ` ${s.scopeID}` : ""}` : undefined,
        ],
        ["org", s.org],
        ["export", s.exportKey],
      ];
      for (const [label, value] of rows) {
        if (value !== undefined) process.stdout.write(`${label.padEnd(11)}${value}\n`);
      }
    }),
  );

  sessionCommand(
    "rm",
    "remove a session record (its workspace is left to the worker's cleanup policy)",
  ).action(
    oneShot(run, checkSession, async (dispatcher, flags, name: string) => {
      if (!(await dispatcher.sessions.get(name))) throw notFound(name);
      await dispatcher.sessions.delete(name);
      printDone(flags.json === true, { session: name, removed: true }, `removed session ${name}`);
    }),
  );
}

function notFound(name: string): StationError {
  return new StationError(ErrorCodes.InvalidName, `session ${name}: not found (list them with sessions ls)`);
}
