import { execFile } from "node:child_process";
import { cpus, freemem, loadavg, release, totalmem } from "node:os";
import { promisify } from "node:util";

/** The machine a run was measured on. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  os: string;
  node: string;
  natsServer: string;
  git: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews figures. */
  loadAverage: number[];
  /** The code measured: `git describe` of the checkout, with "-dirty" when it has local changes. */
  commit: string;
}

async function versionOf(bin: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(bin, args, { timeout: 5_000 });
    return stdout.trim().split("\n")[0] ?? "unknown";
  } catch {
    return "not found";
  }
}

/** CPU model, cores, memory, and the versions of node, nats-server and git. */
export async function describeMachine(): Promise<Machine> {
  const gib = (bytes: number) => Math.round((bytes / 2 ** 30) * 10) / 10;
  return {
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    cores: cpus().length,
    memoryGiB: gib(totalmem()),
    freeMemoryGiB: gib(freemem()),
    os: `${process.platform} ${release()}`,
    node: process.version,
    natsServer: await versionOf(process.env.NATS_SERVER_BIN ?? "nats-server", ["--version"]),
    git: await versionOf("git", ["--version"]),
    loadAverage: loadAverageNow(),
    commit: await versionOf("git", ["describe", "--always", "--dirty"]),
  };
}

/** The 1, 5 and 15 minute load averages, rounded. */
export function loadAverageNow(): number[] {
  return loadavg().map((x) => Math.round(x * 100) / 100);
}

/** One line per fact, for the top of the report. */
export function formatMachine(m: Machine): string {
  return [
    `cpu: ${m.cpu} (${m.cores} cores)`,
    `memory: ${m.memoryGiB} GiB (${m.freeMemoryGiB} GiB free at start)`,
    `os: ${m.os}`,
    `node: ${m.node}`,
    `nats-server: ${m.natsServer}`,
    `git: ${m.git}`,
    `code: ${m.commit}`,
    `load average at start: ${m.loadAverage.join(", ")}`,
  ].join("\n");
}
