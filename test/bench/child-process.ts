// Child processes for the memory scenario: TypeScript entries run with `node --import tsx`, their
// workspace imports resolved to source through the bench tsconfig, and their RSS read from /proc.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { trackChild } from "@station-coding/testkit";
import { within } from "./bench-env.js";

const TSCONFIG = fileURLToPath(new URL("./tsconfig.json", import.meta.url));

/** A running TypeScript child whose stdout is read line by line (and otherwise dropped). */
export class TsChild {
  private readonly tail: string[] = [];
  private readonly watchers = new Set<(line: string) => void>();
  private readonly exited: Promise<void>;

  private constructor(private readonly proc: ChildProcess) {
    let partial = "";
    proc.stdout?.setEncoding("utf8");
    proc.stdout?.on("data", (chunk: string) => {
      partial += chunk;
      let nl;
      while ((nl = partial.indexOf("\n")) >= 0) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        this.tail.push(line);
        if (this.tail.length > 20) this.tail.shift();
        for (const watch of this.watchers) watch(line);
      }
    });
    proc.stderr?.setEncoding("utf8");
    proc.stderr?.on("data", (chunk: string) => {
      this.tail.push(chunk.trimEnd());
      if (this.tail.length > 20) this.tail.shift();
    });
    this.exited = new Promise((resolve) => proc.once("exit", () => resolve()));
  }

  /** Starts `node --import tsx <entry> <arg>`. */
  static start(entry: string, arg: string): TsChild {
    const proc = spawn(process.execPath, ["--import", "tsx", entry, arg], {
      env: { ...process.env, TSX_TSCONFIG_PATH: TSCONFIG },
      stdio: ["ignore", "pipe", "pipe"],
    });
    // Killed when the run exits, also when a scenario ran past its limit and was left running.
    proc.once("exit", trackChild(proc));
    return new TsChild(proc);
  }

  get pid(): number {
    if (this.proc.pid === undefined) throw new Error("child process did not start");
    return this.proc.pid;
  }

  /** Resolves on the first stdout line (from now on) that `match` accepts. */
  async waitForLine(match: (line: string) => boolean, what: string, timeout = 30_000): Promise<void> {
    let watcher: ((line: string) => void) | undefined;
    const seen = new Promise<void>((resolve, reject) => {
      watcher = (line) => {
        if (match(line)) resolve();
      };
      this.watchers.add(watcher);
      void this.exited.then(() =>
        reject(new Error(`child exited while waiting for ${what}:\n${this.tail.join("\n")}`)),
      );
    });
    try {
      await within(timeout, `child process: ${what}`, seen);
    } finally {
      if (watcher) this.watchers.delete(watcher);
    }
  }

  /** Resident set size now, in MiB (VmRSS of /proc/<pid>/status). */
  async rssMiB(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    if (kb === undefined) throw new Error(`no VmRSS in /proc/${this.pid}/status`);
    return Number(kb) / 1024;
  }

  /** `count` RSS readings `every` ms apart. */
  async sampleRss(count = 5, every = 200): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < count; i += 1) {
      if (i > 0) await delay(every);
      out.push(await this.rssMiB());
    }
    return out;
  }

  /** SIGTERM, then SIGKILL after `grace` ms. */
  async stop(grace = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), grace);
    await this.exited;
    clearTimeout(timer);
  }
}
