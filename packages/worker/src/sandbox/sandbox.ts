import { execFile } from "node:child_process";
import { constants } from "node:fs";
import { access, chmod, lstat, mkdir, readlink, realpath, writeFile } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { z } from "zod";
import { ErrorCodes, StationError, parseWith } from "@station-coding/protocol";

const run = promisify(execFile);

/** Whether the agent's tools run in the OS sandbox. */
export const SandboxMode = z.enum(["on", "off"]);
/** Whether the agent's tools run in the OS sandbox. */
export type SandboxMode = z.infer<typeof SandboxMode>;

/**
 * What the agent's tools may reach on the network. Whatever the policy, they never reach the
 * worker's host: not its loopback services (NATS, OpenCode's API, the station-tools bridge), nor
 * private, link-local or metadata addresses unless `allowlist` names them.
 */
export const NetworkPolicy = z.enum(["allow", "deny", "allowlist"]);
/** What the agent's tools may reach on the network. */
export type NetworkPolicy = z.infer<typeof NetworkPolicy>;

/** Options of the sandbox, as an operator writes them. */
export const SandboxOptions = z
  .object({
    /** `off` runs the agent unconfined (said at start and in every result). @default "on" */
    mode: SandboxMode.optional(),
    /** Network access of tools (bash and webfetch). @default "allow" */
    network: NetworkPolicy.optional(),
    /** Hosts tools may reach with `network: allowlist`: names, `*.example.com` or IP addresses. */
    allowedHosts: z.array(z.string().min(1)).optional(),
    /** The bubblewrap binary. @default "bwrap" on PATH */
    bwrap: z.string().optional(),
    /** The socat binary (carries proxied connections out of the tools' network namespace). @default "socat" on PATH */
    socat: z.string().optional(),
    /** Extra paths the server and the tools see read-only (toolchains outside /usr, e.g. /opt/go). */
    readOnlyPaths: z.array(z.string().startsWith("/")).optional(),
  })
  .strict();
/** Options of the sandbox, as an operator writes them. */
export type SandboxOptions = z.input<typeof SandboxOptions>;

/** Sandbox options with defaults applied and binaries found. */
export interface ResolvedSandbox {
  mode: SandboxMode;
  network: NetworkPolicy;
  allowedHosts: string[];
  /** Absolute path of bwrap (empty with mode off). */
  bwrap: string;
  /** Absolute path of socat (empty with mode off or network deny). */
  socat: string;
  readOnlyPaths: string[];
}

/** Compiles sandbox options; errors name the option. */
export function parseSandboxOptions(raw: SandboxOptions | undefined): Omit<
  ResolvedSandbox,
  "bwrap" | "socat"
> & {
  bwrap?: string;
  socat?: string;
} {
  const o = parseWith(SandboxOptions, raw ?? {}, "sandbox", ErrorCodes.InvalidConfig);
  const network = o.network ?? "allow";
  if (network === "allowlist" && (o.allowedHosts ?? []).length === 0) {
    throw new StationError(
      ErrorCodes.InvalidConfig,
      "sandbox.allowedHosts: is empty; name the hosts tools may reach, or use sandbox.network: deny",
    );
  }
  return {
    mode: o.mode ?? "on",
    network,
    allowedHosts: o.allowedHosts ?? [],
    readOnlyPaths: o.readOnlyPaths ?? [],
    ...(o.bwrap !== undefined ? { bwrap: o.bwrap } : {}),
    ...(o.socat !== undefined ? { socat: o.socat } : {}),
  };
}

/** Finds an executable on PATH (or checks an absolute path); undefined when there is none. */
export async function findExecutable(
  name: string,
  path = process.env.PATH ?? "",
): Promise<string | undefined> {
  const candidates = name.includes("/") ? [name] : path.split(delimiter).map((dir) => join(dir, name));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Resolves the sandbox: with mode `on` finds bwrap (and socat unless the network is denied) and
 * proves that a sandbox inside a sandbox starts here (the server's and a tool's, as they will run).
 * Fails closed: throws SANDBOX_UNAVAILABLE naming what is missing and the way out.
 */
export async function resolveSandbox(raw: SandboxOptions | undefined): Promise<ResolvedSandbox> {
  const o = parseSandboxOptions(raw);
  if (o.mode === "off") return { ...o, bwrap: "", socat: "" };
  const bwrap = await findExecutable(o.bwrap ?? "bwrap");
  if (!bwrap) {
    throw new StationError(
      ErrorCodes.SandboxUnavailable,
      `sandbox: bubblewrap (${o.bwrap ?? "bwrap"}) not found: install it (apt-get install bubblewrap), or run without the sandbox with sandbox: off (--sandbox off, STATION_SANDBOX=off)`,
    );
  }
  let socat = "";
  if (o.network !== "deny") {
    socat = (await findExecutable(o.socat ?? "socat")) ?? "";
    if (!socat) {
      throw new StationError(
        ErrorCodes.SandboxUnavailable,
        `sandbox: socat (${o.socat ?? "socat"}) not found; tools reach the network through it with sandbox.network ${o.network}: install it (apt-get install socat) or set sandbox.network: deny`,
      );
    }
  }
  const resolved: ResolvedSandbox = { ...o, bwrap, socat };
  await probeSandbox(resolved);
  return resolved;
}

/** Runs `true` in a tool sandbox inside a server sandbox, as tasks will; throws when it cannot. */
async function probeSandbox(s: ResolvedSandbox): Promise<void> {
  const layout = await systemLayout(s.readOnlyPaths);
  const inner = [s.bwrap, ...toolSandboxArgs(layout), "--chdir", "/", "--", "/bin/sh", "-c", "true"];
  const outer = [...serverSandboxArgs(layout, []), "--", ...inner];
  try {
    await run(s.bwrap, outer, { timeout: 10_000, env: { PATH: "/usr/bin:/bin" } });
  } catch (err) {
    const stderr = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim().slice(0, 300);
    throw new StationError(
      ErrorCodes.SandboxUnavailable,
      `sandbox: bubblewrap cannot create its namespaces here (${stderr}): allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; in Docker: --security-opt seccomp=unconfined --security-opt apparmor=unconfined, see docs/operations.md), or run without the sandbox with sandbox: off`,
      { cause: err },
    );
  }
}

/** How the host's system directories are laid out, for read-only binds. */
export interface SystemLayout {
  /** bwrap arguments that show the system read-only (binds, or symlinks for merged /usr). */
  args: string[];
}

const SYSTEM_DIRS = ["/usr", "/etc", "/opt"];
const SYSTEM_LINKS = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/** The read-only view of the system shared by the server's and the tools' sandboxes. */
export async function systemLayout(extra: readonly string[] = []): Promise<SystemLayout> {
  const args: string[] = [];
  for (const dir of SYSTEM_DIRS) args.push("--ro-bind-try", dir, dir);
  for (const path of SYSTEM_LINKS) {
    const st = await lstat(path).catch(() => undefined);
    if (!st) continue;
    if (st.isSymbolicLink()) args.push("--symlink", await readlink(path), path);
    else args.push("--ro-bind", path, path);
  }
  // /etc/resolv.conf may point into /run (systemd-resolved).
  args.push("--ro-bind-try", "/run/systemd/resolve", "/run/systemd/resolve");
  for (const path of extra) args.push("--ro-bind", path, path);
  return { args };
}

/**
 * bwrap arguments of the server's sandbox (before the binds of its own directories): its own
 * user, PID, IPC and UTS namespaces, the host's network (it calls the model provider), the system
 * read-only, a private /tmp and /proc. `binds` are bwrap options (`["--bind", src, dest]`) applied after.
 */
export function serverSandboxArgs(layout: SystemLayout, binds: readonly (readonly string[])[]): string[] {
  return [
    ...["--die-with-parent", "--new-session"],
    ...["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"],
    // The private /dev, /proc and /tmp first: the layout's extra binds (the OpenCode binary, the
    // plugin) may live under /tmp, as in a checkout there, and must land on top of them.
    ...["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"],
    ...layout.args,
    ...binds.flat(),
  ];
}

/**
 * bwrap arguments of one tool command (before the workspace bind and the command): new PID, IPC,
 * UTS and network namespaces (the host's loopback is never reachable), no capabilities, the
 * system read-only, a private /tmp and HOME, a fresh /proc and an empty environment.
 */
export function toolSandboxArgs(layout: SystemLayout): string[] {
  return [
    ...["--die-with-parent", "--new-session"],
    ...["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try"],
    ...["--cap-drop", "ALL"],
    ...["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--dir", "/tmp/home"],
    ...layout.args,
    "--clearenv",
    ...["--setenv", "PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    ...["--setenv", "HOME", "/tmp/home", "--setenv", "TMPDIR", "/tmp"],
    ...["--setenv", "LANG", "C.UTF-8", "--setenv", "TERM", "dumb"],
  ];
}

/** Port of the in-sandbox proxy forwarder on the tools' own loopback. */
export const TOOL_PROXY_PORT = 3128;
/** Where the worker's proxy socket appears inside a tool's sandbox. */
const TOOL_PROXY_SOCKET = "/run/station-proxy.sock";

/** Environment variable through which the station plugin hands the task's workspace to the shell. */
export const WORKSPACE_ENV = "STATION_SANDBOX_WORKSPACE";

/**
 * Environment variable through which the station plugin names the bash call a command belongs
 * to (hex, see `callMarker`); the shell shows it on the sandbox's command line, where the worker
 * finds the call's processes.
 */
export const CALL_ENV = "STATION_SANDBOX_CALL";

/** Quotes one word for a POSIX shell. */
export function shQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** What the sandboxing shell needs to know, all fixed when it is written. */
export interface ShellScriptOptions {
  bwrap: string;
  layout: SystemLayout;
  /** Real path under which every workspace of this server lives. */
  workspaceRoot: string;
  /** The worker's proxy socket (network allow/allowlist); absent with network deny. */
  proxySocket?: string;
  socat?: string;
}

/**
 * The `$SHELL` of OpenCode's bash tool. OpenCode runs `$SHELL -c <command>` with the cwd it chose
 * (the agent's `workdir`). The script takes the task's workspace from the environment the station
 * plugin set for this call (from the worker's record of the session, never from the agent), checks
 * that it is a real path under the workspace root and that the cwd is inside it, then runs the
 * command in a tool sandbox that sees only that workspace. Anything unexpected refuses to run.
 */
export function shellScript(o: ShellScriptOptions): string {
  const base = [o.bwrap, ...toolSandboxArgs(o.layout)];
  let command: string[];
  if (o.proxySocket && o.socat) {
    base.push("--ro-bind", o.proxySocket, TOOL_PROXY_SOCKET);
    const proxy = `http://127.0.0.1:${TOOL_PROXY_PORT}`;
    for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"])
      base.push("--setenv", name, proxy);
    base.push(
      "--setenv",
      "NO_PROXY",
      "localhost,127.0.0.1,::1",
      "--setenv",
      "no_proxy",
      "localhost,127.0.0.1,::1",
    );
    // Forward the tools' own loopback port to the worker's filtering proxy, wait until it listens
    // (state 0A in /proc/net/tcp), then run the command as the sandbox's main process.
    const port = TOOL_PROXY_PORT.toString(16).toUpperCase().padStart(4, "0");
    const prelude = [
      `${shQuote(o.socat)} TCP-LISTEN:${TOOL_PROXY_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${TOOL_PROXY_SOCKET} </dev/null >/dev/null 2>&1 &`,
      `i=0; while [ $i -lt 400 ] && ! grep -q ":${port} 00000000:0000 0A" /proc/net/tcp; do i=$((i+1)); sleep 0.005; done`,
      `exec "$0" -c "$1"`,
    ].join("\n");
    command = ["/bin/sh", "-c", prelude, "/bin/bash"];
  } else {
    command = ["/bin/bash", "-c"];
  }
  const root = o.workspaceRoot;
  return `#!/bin/sh
# station-coding: the shell of OpenCode's bash tool. Runs "-c <command>" in a bubblewrap sandbox
# that sees only the task's workspace (read-write), a private /tmp and the system read-only.
set -u
die() { printf 'station sandbox: %s\\n' "$*" >&2; exit 126; }
[ "$#" -eq 2 ] && [ "$1" = "-c" ] || die "expected -c <command>"
ws=\${${WORKSPACE_ENV}:-}
[ -n "$ws" ] || die "no workspace is known for this command; it was not run"
root=${shQuote(root)}
case "$ws" in "$root"/*) ;; *) die "workspace $ws is not under $root; the command was not run" ;; esac
real=$(realpath -e -- "$ws" 2>/dev/null) || die "workspace $ws does not exist"
[ "$real" = "$ws" ] || die "workspace $ws is not a real path; the command was not run"
here=$(pwd -P 2>/dev/null) || here=$ws
case "$here/" in "$ws"/*) ;; *) die "working directory $here is outside the task's workspace $ws; the command was not run" ;; esac
cmd=$2
call=\${${CALL_ENV}:-}
case "$call" in *[!0-9a-f]*) call=invalid ;; esac
set --
# The call's marker goes on bwrap's command line (where the worker finds what still runs of the
# call), not into the command's environment.
# The directories above the workspace exist in the sandbox only as read-only mount points, so a
# write beside the workspace fails instead of landing in the sandbox's scratch space.
d=\${ws%/*}
while [ -n "$d" ] && [ "$d" != /tmp ]; do set -- --perms 0555 --dir "$d" "$@"; d=\${d%/*}; done
exec /usr/bin/env -i ${base.map(shQuote).join(" ")} "$@" --setenv ${CALL_ENV} "$call" --unsetenv ${CALL_ENV} --bind "$ws" "$ws" --remount-ro / --chdir "$here" -- ${command.map(shQuote).join(" ")} "$cmd"
`;
}

/** Writes the sandboxing shell into `dir` (created 0700) and returns its path. */
export async function writeShellScript(dir: string, options: ShellScriptOptions): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "station-sandbox-shell");
  await writeFile(path, shellScript(options), { mode: 0o755 });
  await chmod(path, 0o755);
  return path;
}

/**
 * The smallest directory holding every path in `paths` (real paths): what the server must see
 * read-only to run the opencode binary and load the station plugin with its dependencies.
 */
export async function commonRoot(paths: readonly string[]): Promise<string> {
  const reals = await Promise.all(paths.map((p) => realpath(p)));
  let root = dirname(reals[0] ?? "/");
  while (!reals.every((p) => p === root || p.startsWith(root === "/" ? "/" : `${root}/`)))
    root = dirname(root);
  return root;
}
