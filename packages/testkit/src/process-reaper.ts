/**
 * Makes sure the servers a test process starts never outlive it.
 *
 * Two layers: on a normal exit (and on SIGINT/SIGTERM/SIGHUP) every tracked child is SIGKILLed
 * synchronously; for deaths no handler sees (SIGKILL, a crash of the runtime), a small watchdog
 * process reads the list of live pids from a pipe and kills them when the pipe closes, which the
 * kernel does whenever this process dies.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import type { Writable } from "node:stream";

const live = new Set<ChildProcess>();
let installed = false;
let watchdogInput: Writable | undefined;

// Runs in the watchdog: "+pid" / "-pid" lines add and remove pids; end of input kills the rest.
const WATCHDOG_SOURCE = `
const pids = new Set();
let buf = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buf += chunk;
  let nl;
  while ((nl = buf.indexOf("\\n")) >= 0) {
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    const pid = Number(line.slice(1));
    if (line[0] === "+") pids.add(pid);
    else if (line[0] === "-") pids.delete(pid);
  }
});
const reap = () => {
  for (const pid of pids) {
    try { process.kill(pid, "SIGKILL"); } catch {}
  }
  process.exit(0);
};
process.stdin.on("end", reap);
process.stdin.on("error", reap);
`;

function killAllNow(): void {
  for (const child of live) {
    // Already-exited children throw ESRCH; nothing is left to do for them.
    try {
      child.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
}

function onSignal(signal: NodeJS.Signals): void {
  killAllNow();
  // When nobody else handles the signal, restore the default behaviour (terminate) that our
  // listener suppressed, by re-raising it without us.
  if (process.listenerCount(signal) === 1) {
    process.removeListener(signal, onSignal);
    process.kill(process.pid, signal);
  }
}

function startWatchdog(): void {
  try {
    const watchdog = spawn(process.execPath, ["-e", WATCHDOG_SOURCE], {
      stdio: ["pipe", "ignore", "ignore"],
      // Its own process group, so a Ctrl-C to our group does not kill it before it reaps.
      detached: true,
    });
    const input = watchdog.stdin;
    // The watchdog is a second line of defence: if it cannot start or dies, the exit handler
    // still kills the children on every exit this process can observe.
    watchdog.on("error", () => {
      watchdogInput = undefined;
    });
    input.on("error", () => {
      watchdogInput = undefined;
    });
    watchdog.unref();
    (input as Writable & { unref?: () => void }).unref?.();
    watchdogInput = input;
  } catch {
    watchdogInput = undefined;
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
  startWatchdog();
}

/**
 * Registers a child process to be killed when this process exits; returns the function that
 * unregisters it, to call once the child has exited.
 */
export function trackChild(child: ChildProcess): () => void {
  install();
  const pid = child.pid;
  live.add(child);
  if (pid !== undefined) watchdogInput?.write(`+${pid}\n`);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    live.delete(child);
    if (pid !== undefined) watchdogInput?.write(`-${pid}\n`);
  };
}
