// Runs the BUILT station-coding CLI (packages/cli/dist/main.js) as a child process against a test
// nats-server, collecting its output; every process is killed when the test ends.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { waitFor } from "@station-coding/testkit";

/** The built CLI entry point. */
export const CLI_MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

/** How a CLI process ended and what it printed. */
export interface CliExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from spawn to exit. */
  elapsed: number;
}

/** Non-empty lines of some output. */
export function linesOf(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

/** A running CLI process. */
export class CliProcess {
  stdout = "";
  stderr = "";
  readonly exited: Promise<CliExit>;

  constructor(
    readonly child: ChildProcess,
    readonly args: string[],
  ) {
    const started = Date.now();
    child.stdout?.on("data", (chunk: Buffer) => (this.stdout += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, elapsed: Date.now() - started }),
      );
    });
  }

  /** Waits until stdout has a line matching `pattern`. */
  async waitForOutput(pattern: RegExp, timeout = 20_000): Promise<void> {
    await waitFor(() => pattern.test(this.stdout) || this.child.exitCode !== null, {
      timeout,
      message: `station-coding ${this.args.join(" ")} to print ${String(pattern)}; got:\n${this.stdout}${this.stderr}`,
    });
    if (!pattern.test(this.stdout)) {
      throw new Error(
        `station-coding ${this.args.join(" ")} exited ${this.child.exitCode} before printing ${String(pattern)}:\n` +
          `${this.stdout}${this.stderr}`,
      );
    }
  }

  /** Waits for the exit; kills the process and fails when it takes longer than `timeout`. */
  async wait(timeout = 30_000): Promise<CliExit> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.child.kill("SIGKILL");
        reject(
          new Error(
            `station-coding ${this.args.join(" ")} did not exit within ${timeout}ms:\n${this.stdout}${this.stderr}`,
          ),
        );
      }, timeout);
    });
    try {
      return await Promise.race([this.exited, limit]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Starts CLI processes connected to one server and kills the ones still running on `killAll`. */
export class Cli {
  private readonly running = new Set<CliProcess>();

  /** @param natsUrl the server the CLI reaches through NATS_URL (undefined: none set). */
  constructor(private readonly natsUrl: string | undefined) {
    if (!existsSync(CLI_MAIN)) {
      throw new Error(`${CLI_MAIN} is missing: build the CLI first (npx tsc -b packages/cli)`);
    }
  }

  /** Starts `station-coding <args>`. */
  spawn(args: string[], options: { env?: Record<string, string>; cwd?: string } = {}): CliProcess {
    const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
    for (const name of ["LOG_LEVEL", "NATS_PASSWORD", "NATS_TOKEN", "NATS_URL"]) delete env[name];
    if (this.natsUrl !== undefined) env.NATS_URL = this.natsUrl;
    Object.assign(env, options.env);
    const child = spawn(process.execPath, [CLI_MAIN, ...args], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.cwd !== undefined ? { cwd: options.cwd } : {}),
    });
    const proc = new CliProcess(child, args);
    this.running.add(proc);
    void proc.exited.finally(() => this.running.delete(proc)).catch(() => undefined);
    return proc;
  }

  /** Runs `station-coding <args>` to its exit. */
  async run(args: string[], options: { env?: Record<string, string>; cwd?: string; timeout?: number } = {}) {
    return this.spawn(args, options).wait(options.timeout);
  }

  /** Kills every process still running and waits for them to go. */
  async killAll(): Promise<void> {
    const procs = [...this.running];
    for (const proc of procs) proc.child.kill("SIGKILL");
    await Promise.all(procs.map((proc) => proc.exited.catch(() => undefined)));
  }
}
