import { readFile, readdir } from "node:fs/promises";
import { abortableDelay } from "../shared/abortable-delay.js";
import { CALL_ENV } from "./sandbox.js";

/**
 * The marker of one bash call on its sandbox's command line: the calling session and the call id,
 * hex-encoded so that any id is safe in a shell and unambiguous. The station plugin hands it to
 * the sandboxing shell (`STATION_SANDBOX_CALL`), which puts it on bwrap's command line (set and
 * unset again, so the command's environment does not have it).
 */
export function callMarker(sessionID: string, callID: string): string {
  return Buffer.from(`${sessionID}/${callID}`).toString("hex");
}

/** Processes whose command line carries `--setenv STATION_SANDBOX_CALL <marker>`. */
async function processesOf(marker: string): Promise<number[]> {
  const found: number[] = [];
  const pids = (await readdir("/proc")).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const args = cmdline.split("\0");
    for (let i = 0; i + 2 < args.length; i += 1) {
      if (args[i] === "--setenv" && args[i + 1] === CALL_ENV && args[i + 2] === marker) {
        found.push(Number(pid));
        break;
      }
    }
  }
  return found;
}

/**
 * Kills whatever still runs of a bash call's sandbox and waits until it is gone; returns how many
 * processes were killed. OpenCode kills a command it aborts, but its report that the call is over
 * does not wait for that, and a hold on the workspace must not end while a command that could
 * swap links there still runs. Killing the sandbox's bwrap processes takes every process of its
 * PID namespace with them.
 *
 * @throws Error when processes are still there after `timeout` ms.
 */
export async function killCallProcesses(marker: string, timeout = 5_000): Promise<number> {
  const killed = new Set<number>();
  const deadline = Date.now() + timeout;
  for (;;) {
    const pids = await processesOf(marker);
    if (pids.length === 0) return killed.size;
    if (Date.now() > deadline) {
      throw new Error(
        `the sandbox of bash call ${marker} is still running after ${timeout} ms (pids ${pids.join(", ")})`,
      );
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
        killed.add(pid);
      } catch {
        // gone meanwhile
      }
    }
    await abortableDelay(20);
  }
}
