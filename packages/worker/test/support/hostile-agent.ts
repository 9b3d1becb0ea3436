// Pieces shared by the tests in which a scripted agent attacks the sandbox: its tool calls, the
// neighbours it attacks (another task's workspace, another org's) and a record of files to
// compare before and after.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ScenarioContext, ScriptedToolCall } from "@station-coding/testkit";

/** The task's workspace, as OpenCode states it to the model. */
export const workdirOf = (ctx: ScenarioContext): string => ctx.workdir ?? "/nonexistent";

/** A tool call with a fixed id, its arguments built when the model makes the call. */
export function toolCall(
  id: string,
  name: string,
  args: (ctx: ScenarioContext) => Record<string, unknown>,
): ScriptedToolCall {
  return { id, name, arguments: args };
}

/** The workspaces beside the attacker's (org `acme`): another task's, and another org's. */
export interface Neighbours {
  otherTask: string;
  otherOrg: string;
}

/** Creates the neighbours under `workspaceDir`, each with a `secret.txt` that must stay unread. */
export async function neighbours(workspaceDir: string): Promise<Neighbours> {
  const otherTask = join(workspaceDir, "acme", "other-task");
  await mkdir(otherTask, { recursive: true });
  await writeFile(join(otherTask, "secret.txt"), "other task secret\n");
  const otherOrg = join(workspaceDir, "globex", "their-ws");
  await mkdir(otherOrg, { recursive: true });
  await writeFile(join(otherOrg, "secret.txt"), "globex secret\n");
  return { otherTask, otherOrg };
}

/** Every file under `dir` with its size, mtime and content (links as "link"), skipping `skip`. */
export function fileSnapshot(dir: string, skip = ""): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (path === skip) continue;
      if (entry.isDirectory()) walk(path);
      else {
        const st = statSync(path, { throwIfNoEntry: false });
        out[path] = st
          ? `${st.size}:${st.mtimeMs}:${entry.isFile() ? readFileSync(path, "utf8") : "link"}`
          : "?";
      }
    }
  };
  walk(dir);
  return out;
}
