// What the deploy tests read (docker-compose.yaml, deploy/, docs/operations.md) and how they run
// the built CLI and the commands the compose file names, outside Docker.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";

/** The repository root: the compose project directory and the image's WORKDIR. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

/** The built CLI, as the images run it (relative to the repository root). */
export const CLI_ENTRY = "packages/cli/dist/main.js";

/** Fails with what to do when the CLI was not built: these tests run the built output. */
export function requireBuiltCli(): void {
  if (!existsSync(join(REPO_ROOT, CLI_ENTRY))) {
    throw new Error(`${CLI_ENTRY} is missing: build first (npx tsc -b, or npm run build)`);
  }
}

/** Reads a file of the repository. */
export function repoFile(path: string): string {
  return readFileSync(join(REPO_ROOT, path), "utf8");
}

/** A compose healthcheck. */
export interface ComposeHealthcheck {
  test: string[];
  interval?: string;
  start_period?: string;
}

/** The parts of a compose service the tests read. */
export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string };
  command?: string[];
  environment?: Record<string, string | null>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  user?: string;
  cap_add?: string[];
  security_opt?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: ComposeHealthcheck;
}

/** The parts of docker-compose.yaml the tests read. */
export interface ComposeFile {
  [key: string]: unknown;
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

/** docker-compose.yaml, parsed with merge keys (`<<: *anchor`) resolved as Compose does. */
export function loadCompose(): ComposeFile {
  return parse(repoFile("docker-compose.yaml"), { merge: true }) as ComposeFile;
}

/** A service of the compose file, or an error naming it. */
export function service(compose: ComposeFile, name: string): ComposeService {
  const found = compose.services[name];
  if (!found) throw new Error(`docker-compose.yaml has no service ${name}`);
  return found;
}

/** Compose's `$$` is a literal `$`; a healthcheck's CMD-SHELL string is run by `sh -c`. */
export function shellCommand(check: ComposeHealthcheck): string {
  const [kind, ...rest] = check.test;
  if (kind !== "CMD-SHELL" || rest.length !== 1) {
    throw new Error(`healthcheck ${JSON.stringify(check.test)}: expected ["CMD-SHELL", "<command>"]`);
  }
  return rest[0]!.replaceAll("$$", "$");
}

/**
 * The value Compose gives a variable: `${VAR:-default}` and `${VAR}` taken from `hostEnv`, `$$` as
 * `$`; a bare key (null) passes the host's value through, or leaves the variable unset.
 */
export function interpolate(
  value: string | null,
  name: string,
  hostEnv: Record<string, string | undefined>,
): string | undefined {
  if (value === null) return hostEnv[name];
  return value
    .replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_m, v: string, fallback: string | undefined) => {
      const given = hostEnv[v];
      return given !== undefined && given !== "" ? given : (fallback ?? "");
    })
    .replaceAll("$$", "$");
}

/** Names of the host variables a compose file interpolates (`${VAR}`, `${VAR:-default}`). */
export function interpolatedNames(text: string): string[] {
  return [...text.matchAll(/\$\{([A-Z0-9_]+)(?::-[^}]*)?\}/g)].map((m) => m[1]!);
}

/** The stages of a Dockerfile by name, each with its instructions (continuation lines joined). */
export function dockerStages(text: string): Map<string, string[]> {
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const raw of lines) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const from = /^FROM\s+\S+(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      current = [];
      if (from[1]) stages.set(from[1], current);
      continue;
    }
    current?.push(line);
  }
  return stages;
}

/** The JSON-array argument of a Dockerfile instruction (`CMD ["a", "b"]`) in a stage. */
export function execForm(instructions: string[], keyword: string): string[] | undefined {
  const line = instructions.findLast((l) => l.toUpperCase().startsWith(`${keyword} `));
  return line === undefined ? undefined : (JSON.parse(line.slice(keyword.length + 1)) as string[]);
}

/** Every `.ts` file under a directory. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => join(e.parentPath, e.name));
}

/**
 * Environment variables the packages' sources read: `process.env.X`, `process.env["X"]` and
 * commander's `.env("X")`, with the files that read each.
 */
export function envVarsReadBySources(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const packages = join(REPO_ROOT, "packages");
  for (const pkg of readdirSync(packages)) {
    const src = join(packages, pkg, "src");
    if (!existsSync(src)) continue;
    for (const file of sourceFiles(src)) {
      const text = readFileSync(file, "utf8");
      const patterns = [
        /process\.env\.([A-Z][A-Z0-9_]*)/g,
        /process\.env\[\s*"([A-Z][A-Z0-9_]*)"\s*\]/g,
        /\.env\(\s*"([A-Z][A-Z0-9_]*)"\s*,?\s*\)/g,
        // An environment passed in (`env = options.env ?? process.env`, as startTracing reads it).
        /(?<![.\w])env\.([A-Z][A-Z0-9_]*)/g,
      ];
      for (const pattern of patterns) {
        for (const match of text.matchAll(pattern)) {
          const files = found.get(match[1]!) ?? [];
          files.push(relative(REPO_ROOT, file));
          found.set(match[1]!, files);
        }
      }
    }
  }
  return found;
}

/** The variables in the table of the "Environment variables" section of docs/operations.md. */
export function documentedEnvVars(): string[] {
  const doc = repoFile("docs/operations.md");
  const start = doc.indexOf("## Environment variables");
  if (start < 0) throw new Error('docs/operations.md has no "## Environment variables" section');
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return [...section.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|/gm)].map((m) => m[1]!);
}

/** The variables of the table in the "Running it with Docker Compose" section, with their defaults. */
export function documentedComposeVars(): Map<string, string> {
  const doc = repoFile("docs/operations.md");
  const start = doc.indexOf("## Running it with Docker Compose");
  if (start < 0) throw new Error('docs/operations.md has no "## Running it with Docker Compose" section');
  const end = doc.indexOf("\n## ", start + 1);
  const section = doc.slice(start, end < 0 ? undefined : end);
  return new Map(
    [...section.matchAll(/^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|\s*`([^`]*)`/gm)].map((m) => [m[1]!, m[2]!]),
  );
}

/**
 * Whether `.dockerignore` keeps `path` out of the build context: the last pattern that matches it
 * (the path itself or a directory above it) decides, `!` patterns taking it back in, as Docker does.
 */
export function dockerIgnored(path: string, patterns: readonly string[]): boolean {
  let ignored = false;
  const parts = path.split("/");
  const prefixes = parts.map((_p, i) => parts.slice(0, i + 1).join("/"));
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const pattern = (negated ? raw.slice(1) : raw).replace(/\/$/, "");
    const regex = new RegExp(
      `^${pattern
        .split("**/")
        .map((piece) => piece.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", "[^/]*"))
        .join("(?:.*/)?")}$`,
    );
    if (prefixes.some((p) => regex.test(p))) ignored = !negated;
  }
  return ignored;
}

/** How a process ended and what it printed. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A child process whose output is collected. */
export class Child {
  stdout = "";
  stderr = "";
  readonly exited: Promise<Exit>;

  constructor(readonly process: ChildProcess) {
    process.stdout?.on("data", (chunk: Buffer) => (this.stdout += chunk.toString()));
    process.stderr?.on("data", (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve, reject) => {
      process.on("error", reject);
      process.on("close", (code, signal) =>
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr }),
      );
    });
  }

  /** Waits for the exit; kills the process and fails when it takes longer than `timeout` ms. */
  async wait(timeout: number): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.process.kill("SIGKILL");
        reject(new Error(`process did not exit within ${timeout}ms:\n${this.stdout}\n${this.stderr}`));
      }, timeout);
    });
    try {
      return await Promise.race([this.exited, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Kills the process if it still runs, and waits for it. */
  async kill(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) this.process.kill("SIGKILL");
    await this.exited.catch(() => undefined);
  }
}

/** Variables a process of these tests must not inherit: they would change what it does. */
const INHERITED_SETTINGS = [
  "NATS_URL",
  "NATS_PASSWORD",
  "NATS_TOKEN",
  "LOG_LEVEL",
  "STATION_CONCURRENCY",
  "STATION_WORKSPACE_DIR",
  "OPENCODE_URL",
  "OPENCODE_SERVER_PASSWORD",
  "OPENCODE_CONFIG_FILE",
  "STATION_OFFLINE_MODEL_URL",
  "ANTHROPIC_API_KEY",
  "OPENAI_API_KEY",
];

/** This process's environment without the settings above, plus `env`. */
export function cleanEnv(env: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...process.env };
  for (const name of INHERITED_SETTINGS) delete out[name];
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete out[name];
    else out[name] = value;
  }
  return out;
}

/** Starts `argv` (a compose `command`: "node" is this Node) in the repository root. */
export function spawnCommand(argv: string[], env: NodeJS.ProcessEnv): Child {
  const [bin, ...args] = argv;
  if (bin === undefined) throw new Error("empty command");
  return new Child(
    spawn(bin === "node" ? process.execPath : bin, args, {
      cwd: REPO_ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    }),
  );
}

/** Runs `node packages/cli/dist/main.js <args>` to its exit. */
export async function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = cleanEnv(),
  timeout = 30_000,
): Promise<Exit> {
  return spawnCommand(["node", CLI_ENTRY, ...args], env).wait(timeout);
}

/** Runs a shell command (a healthcheck) in the repository root. */
export async function runShell(command: string, env: NodeJS.ProcessEnv, timeout = 30_000): Promise<Exit> {
  return new Child(
    spawn("sh", ["-c", command], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] }),
  ).wait(timeout);
}

/** Ports free on 127.0.0.1 right now, all distinct (bound at once, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => createServer());
  const ports = await Promise.all(
    servers.map(
      (server) =>
        new Promise<number>((resolve, reject) => {
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port));
        }),
    ),
  );
  await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  return ports;
}
