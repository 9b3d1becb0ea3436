// What still runs of a bash call's sandbox can be found by its marker and killed: the backstop
// for a command OpenCode was asked to stop but left running.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, realpath, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir, waitFor } from "@station-coding/testkit";
import {
  CALL_ENV,
  WORKSPACE_ENV,
  callMarker,
  killCallProcesses,
  resolveSandbox,
  systemLayout,
  writeShellScript,
} from "@station-coding/worker/internal";

let dir: string;
let workspace: string;
let shell: string;
beforeAll(async () => {
  dir = await realpath(await tempDir("tool-processes"));
  workspace = join(dir, "root", "ws");
  await mkdir(workspace, { recursive: true });
  const sandbox = await resolveSandbox({ network: "deny" });
  shell = await writeShellScript(join(dir, "shell"), {
    bwrap: sandbox.bwrap,
    layout: await systemLayout(),
    workspaceRoot: join(dir, "root"),
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Starts an endless command through the sandboxing shell, as OpenCode's bash tool would. */
function endless(marker: string, beat: string) {
  const child = spawn(shell, ["-c", `while :; do date > ${beat}; sleep 0.05; done`], {
    cwd: workspace,
    env: { [WORKSPACE_ENV]: workspace, [CALL_ENV]: marker },
    stdio: "ignore",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { child, exited };
}

describe("killCallProcesses", () => {
  it("kills every process of one call's sandbox, and no other call's", async () => {
    const mine = callMarker("ses_a", "call_1");
    const other = callMarker("ses_a", "call_2");
    expect(mine).toMatch(/^[0-9a-f]+$/);
    const a = endless(mine, "a.txt");
    const b = endless(other, "b.txt");
    try {
      await waitFor(() => existsSync(join(workspace, "a.txt")) && existsSync(join(workspace, "b.txt")), {
        message: "both commands running",
      });
      expect(await killCallProcesses(mine)).toBeGreaterThanOrEqual(2);
      await a.exited;
      expect(await killCallProcesses(mine)).toBe(0);
      expect(b.child.exitCode).toBeNull();
    } finally {
      await killCallProcesses(other);
      await b.exited;
    }
  });
});
