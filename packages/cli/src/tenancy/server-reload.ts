import { execFile } from "node:child_process";
import { access, readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { promisify } from "node:util";
import { ErrorCodes, StationError } from "@station-coding/protocol";

const run = promisify(execFile);

/** Which nats-server to reload: a pid, a pid file, or (neither) the one `nats-server --signal` finds. */
export interface ReloadTarget {
  pid?: number;
  pidFile?: string;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * Checks a server config with `nats-server -t` (when nats-server is on PATH), so that a reload is
 * never sent for a config the server would refuse (it would keep running the old one).
 * Resolves with false when no check could be made.
 */
export async function checkServerConfig(configFile: string): Promise<boolean> {
  if (!(await exists(configFile))) return false;
  try {
    await run("nats-server", ["-t", "-c", configFile]);
    return true;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; stdout?: string };
    if (e.code === "ENOENT") return false;
    throw new StationError(
      ErrorCodes.InvalidConfig,
      `nats-server refuses ${configFile}: ${(e.stderr || e.stdout || e.message).trim()}`,
      { cause: err },
    );
  }
}

/** The `pid_file` a server config names, resolved against the config's directory. */
async function pidFileOf(configFile: string): Promise<string | undefined> {
  const text = await readFile(configFile, "utf8").catch(() => "");
  const match = /^\s*pid_file\s*[:=]\s*"?([^"\n]+?)"?\s*$/m.exec(text);
  if (!match?.[1]) return undefined;
  return isAbsolute(match[1]) ? match[1] : resolve(dirname(configFile), match[1]);
}

/**
 * Asks nats-server to reload its configuration (SIGHUP): no restart, clients stay connected. The
 * target is `pid`, else the pid in `pidFile`, else the `pid_file` of `configFile`, else whatever
 * `nats-server --signal reload` finds. Resolves with the pid signalled, when known.
 */
export async function reloadServer(target: ReloadTarget, configFile: string): Promise<number | undefined> {
  let pid = target.pid;
  const pidFile = target.pidFile ?? (pid === undefined ? await pidFileOf(configFile) : undefined);
  if (pid === undefined && pidFile !== undefined) {
    const text = await readFile(pidFile, "utf8").catch((err: unknown) => {
      throw new StationError(
        ErrorCodes.InvalidConfig,
        `--pid-file ${pidFile}: cannot be read (${(err as Error).message}); pass --pid <pid> of nats-server`,
      );
    });
    pid = Number.parseInt(text.trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new StationError(ErrorCodes.InvalidConfig, `--pid-file ${pidFile}: holds no process id`);
    }
  }
  if (pid === undefined) {
    try {
      await run("nats-server", ["--signal", "reload"]);
      return undefined;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new StationError(
        ErrorCodes.Internal,
        `could not reload nats-server: ${(e.stderr ?? e.message).trim()} (pass --pid <pid> or --pid-file <file>)`,
        { cause: err },
      );
    }
  }
  try {
    process.kill(pid, "SIGHUP");
  } catch (err) {
    throw new StationError(
      ErrorCodes.Internal,
      `could not signal nats-server (pid ${pid}) to reload: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return pid;
}
