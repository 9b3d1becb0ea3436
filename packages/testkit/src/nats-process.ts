import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";

import { NatsServerError } from "./nats-server-error.js";
import { trackChild } from "./process-reaper.js";

/** How to run one nats-server process. */
export interface NatsProcessSpec {
  bin: string;
  configPath: string;
  /** The text of the config file, quoted with line numbers when the server rejects it. */
  config: string;
  /** The `ports_file_dir` of the config: readiness is detected through the ports file there. */
  portsFileDir: string;
  /** Milliseconds to wait until the server accepts connections. */
  startTimeout: number;
  /** When set, every log line is written to this process's stderr with this prefix. */
  logPrefix?: string;
}

/** The addresses a started server listens on, read from its ports file. */
export interface ListenPorts {
  port: number;
  monitorPort?: number;
  clusterPort?: number;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

const LOG_TAIL_LINES = 40;
const POLL_MS = 10;

/** Port of the first URL in a ports-file list (`["nats://127.0.0.1:4222"]`). */
function firstPort(urls: unknown): number | undefined {
  if (!Array.isArray(urls) || typeof urls[0] !== "string") return undefined;
  const port = Number(new URL(urls[0]).port);
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/** Reads `<exe>_<pid>.ports`; undefined while it does not exist or is still being written. */
async function readPortsFile(dir: string, pid: number): Promise<ListenPorts | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const name = names.find((n) => n.endsWith(`_${pid}.ports`));
  if (name === undefined) return undefined;
  try {
    const parsed = JSON.parse(await readFile(join(dir, name), "utf8")) as Record<string, unknown>;
    const port = firstPort(parsed.nats);
    if (port === undefined) return undefined;
    return { port, monitorPort: firstPort(parsed.monitoring), clusterPort: firstPort(parsed.cluster) };
  } catch {
    return undefined;
  }
}

/** Whether a TCP connection to 127.0.0.1:port succeeds. */
function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** One run of a nats-server binary: spawned, waited for until ready, stopped or killed. */
export class NatsProcess {
  readonly pid: number;
  readonly #child: ChildProcess;
  readonly #exited: Promise<ExitInfo>;
  readonly #log: string[] = [];
  #exit: ExitInfo | undefined;

  private constructor(child: ChildProcess, pid: number, exited: Promise<ExitInfo>) {
    this.#child = child;
    this.pid = pid;
    this.#exited = exited.then((info) => {
      this.#exit = info;
      return info;
    });
  }

  /**
   * Spawns the server and resolves once it listens (ports file written, TCP connect succeeds).
   * Rejects with the server's last log lines when it exits first or does not get ready in time.
   */
  static async launch(spec: NatsProcessSpec): Promise<{ process: NatsProcess; ports: ListenPorts }> {
    const child = spawn(spec.bin, ["-c", spec.configPath], { stdio: ["ignore", "pipe", "pipe"] });
    const untrack = child.pid === undefined ? () => undefined : trackChild(child);
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
      child.once("close", (code, signal) => resolve({ code, signal }));
    }).finally(untrack);
    // The server must not keep a test process alive; the reaper kills it when this process exits.
    child.unref();
    for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();

    if (child.pid === undefined) {
      const info = await exited;
      throw new NatsServerError(
        "NATS_SERVER_EXITED",
        `nats-server could not be started from "${spec.bin}": ${info.error?.message ?? "no pid"}`,
        { cause: info.error },
      );
    }
    const proc = new NatsProcess(child, child.pid, exited);
    proc.#collect(child.stdout, spec.logPrefix);
    proc.#collect(child.stderr, spec.logPrefix);
    try {
      const ports = await proc.#waitReady(spec);
      return { process: proc, ports };
    } catch (err) {
      await proc.kill();
      throw err;
    }
  }

  /** Whether the process has not exited yet. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** The last lines the server logged. */
  logTail(): string {
    return this.#log.join("\n");
  }

  /** Resolves when the process has exited (at once if it has). */
  async exited(): Promise<void> {
    await this.#exited;
  }

  /** SIGTERM (a clean shutdown that flushes JetStream), then SIGKILL after `timeoutMs`. */
  async terminate(timeoutMs: number): Promise<void> {
    if (!this.running) return;
    this.#signal("SIGTERM");
    const timer = new AbortController();
    const exitedInTime = await Promise.race([
      this.#exited.then(() => true),
      delay(timeoutMs, false, { signal: timer.signal }).catch(() => false),
    ]);
    timer.abort();
    if (!exitedInTime) await this.kill();
  }

  /** SIGKILL, as in a crash: nothing is flushed. Resolves when the process is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.#signal("SIGKILL");
    await this.#exited;
  }

  #signal(signal: NodeJS.Signals): void {
    try {
      this.#child.kill(signal);
    } catch {
      // ESRCH: it exited between the check and the signal; #exited settles on its own.
    }
  }

  #collect(stream: Readable | null, logPrefix: string | undefined): void {
    if (!stream) return;
    const lines = createInterface({ input: stream, crlfDelay: Infinity });
    lines.on("line", (line) => {
      this.#log.push(line);
      if (this.#log.length > LOG_TAIL_LINES) this.#log.shift();
      if (logPrefix !== undefined) process.stderr.write(`[${logPrefix}] ${line}\n`);
    });
  }

  #failure(what: string, info: ExitInfo | undefined, spec: NatsProcessSpec): NatsServerError {
    const log = this.logTail();
    const status = info
      ? info.error
        ? `failed: ${info.error.message}`
        : `exited with ${info.signal ? `signal ${info.signal}` : `code ${info.code}`}`
      : what;
    const code = /address already in use/i.test(log)
      ? "NATS_SERVER_PORT_IN_USE"
      : info
        ? "NATS_SERVER_EXITED"
        : "NATS_SERVER_START_TIMEOUT";
    // Config errors are reported by line number, and the file is gone once start() has cleaned up.
    const config =
      code === "NATS_SERVER_EXITED"
        ? `\nthe config it was given:\n${spec.config
            .trimEnd()
            .split("\n")
            .map((line, i) => `${String(i + 1).padStart(3)}  ${line}`)
            .join("\n")}`
        : "";
    return new NatsServerError(
      code,
      `nats-server (${spec.bin} -c ${spec.configPath}) ${status} before it was ready` +
        (log ? `; its last log lines:\n${log}` : "; it logged nothing") +
        config,
      { serverLog: log, cause: info?.error },
    );
  }

  async #waitReady(spec: NatsProcessSpec): Promise<ListenPorts> {
    const deadline = performance.now() + spec.startTimeout;
    const pause = async () => {
      await Promise.race([delay(POLL_MS), this.#exited]);
    };
    let ports: ListenPorts | undefined;
    for (;;) {
      if (this.#exit) throw this.#failure("", await this.#exited, spec);
      ports ??= await readPortsFile(spec.portsFileDir, this.pid);
      if (ports && (await canConnect(ports.port))) return ports;
      if (performance.now() > deadline) {
        throw this.#failure(`did not listen within ${spec.startTimeout}ms`, undefined, spec);
      }
      await pause();
    }
  }
}
