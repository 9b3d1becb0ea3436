// The Docker engine of the compose tests: the shared script that installs and starts it on a
// machine of this kind (Debian's docker.io and Compose v1.29, stand-in base images), found from the
// repository upwards, and the image build every test file uses.
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the compose project directory. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** Where the shared script lives, relative to a directory above the checkout. */
const SCRIPT_PATH = join("shared", "tools", "docker-engine.sh");

/**
 * The engine script: `$DOCKER_ENGINE_SCRIPT` when set, else `shared/tools/docker-engine.sh` in the
 * nearest directory above the checkout that has one (`../shared` for a clone, `../../shared` for a
 * worktree under `wt/`), else above the checkout it was cloned from (a clean clone made elsewhere,
 * such as CI's, of a checkout that sits beside `shared/`). Fails naming every place it looked.
 */
export function engineScript(): string {
  const given = process.env.DOCKER_ENGINE_SCRIPT;
  if (given) {
    if (!existsSync(given)) throw new Error(`DOCKER_ENGINE_SCRIPT=${given}: no such file`);
    return given;
  }
  const looked: string[] = [];
  for (const start of [REPO_ROOT, clonedFrom()]) {
    if (start === undefined) continue;
    for (let dir = dirname(start.replace(/\/$/, "")); ; dir = dirname(dir)) {
      const candidate = join(dir, SCRIPT_PATH);
      if (existsSync(candidate)) return candidate;
      looked.push(candidate);
      if (dirname(dir) === dir) break;
    }
  }
  throw new Error(
    `the Docker engine script ${SCRIPT_PATH} was not found (looked at ${looked.join(", ")}): ` +
      "the compose tests need it to install and start dockerd and to build the stand-in base images; " +
      "put the shared/ folder next to the checkout or set DOCKER_ENGINE_SCRIPT",
  );
}

/** The local directory this checkout was cloned from (its `origin`), if it is one. */
function clonedFrom(): string | undefined {
  try {
    const url = execFileSync("git", ["-C", REPO_ROOT, "remote", "get-url", "origin"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const path = url.startsWith("file://") ? fileURLToPath(url) : url;
    return isAbsolute(path) && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** How a command ended and what it printed. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Options of {@link run}. */
export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Milliseconds before the command is killed and the call fails. @default 120_000 */
  timeout?: number;
  /** Copy the output to this process's stderr as it comes, each line with this prefix. */
  echo?: string;
}

/** Runs a command to its exit; rejects only when it cannot start or takes longer than `timeout`. */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<Exit> {
  const timeout = options.timeout ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? REPO_ROOT,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    const echo = (chunk: Buffer): void => {
      if (options.echo === undefined) return;
      for (const line of chunk.toString().split("\n")) {
        if (line.trim() !== "") process.stderr.write(`${options.echo} ${line}\n`);
      }
    };
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      echo(chunk);
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      echo(chunk);
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")}: no exit within ${timeout} ms\n${stdout}\n${stderr}`));
    }, timeout);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Runs a command and fails with its output unless it exits 0. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<Exit> {
  const exit = await run(command, args, options);
  if (exit.code !== 0) {
    throw new Error(
      `${command} ${args.join(" ")} exited ${exit.code ?? exit.signal}:\n${exit.stdout}\n${exit.stderr}`,
    );
  }
  return exit;
}

/** Whether a Docker engine answers on this machine. */
export async function engineRunning(): Promise<boolean> {
  const exit = await run("docker", ["info", "--format", "{{.ServerVersion}}"], { timeout: 30_000 }).catch(
    () => undefined,
  );
  return exit?.code === 0;
}

/**
 * Installs (once per machine) and starts the engine with the shared script, which also builds the
 * stand-in base images once. Returns whether this call started dockerd.
 */
export async function ensureEngine(): Promise<{ started: boolean }> {
  const script = engineScript();
  const running = await engineRunning();
  // First run on a machine: apt-get and debootstrap take minutes.
  await runOk("bash", [script], { timeout: 20 * 60_000, echo: "docker-engine |" });
  return { started: !running };
}

/** Stops the dockerd the script started. */
export async function stopEngine(): Promise<void> {
  await runOk("bash", [engineScript(), "stop"], { timeout: 60_000 });
}
