import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { NetworkGate } from "./sandbox-network.js";
import { isInside } from "../workspace/workspace.js";

/** Where a path really leads: the real path, after every symbolic link on the way. */
export interface RealPath {
  /** The real path (of the deepest existing ancestor, plus the rest of the path). */
  real: string;
  /** Set when the path cannot be judged safely (a dangling link, a loop). */
  problem?: string;
}

/**
 * Resolves `path` (absolute, or relative to `base`) to where a write or read would really land:
 * the real path of its deepest existing ancestor plus the components that do not exist yet. A
 * dangling symbolic link is a problem: writing through it would create its target, wherever that is.
 */
export function resolveRealPath(base: string, path: string): RealPath {
  let current = isAbsolute(path) ? resolve(path) : resolve(base, path);
  const rest: string[] = [];
  for (;;) {
    try {
      return { real: join(realpathSync(current), ...rest.reverse()) };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ELOOP") return { real: current, problem: `${current} is a loop of symbolic links` };
      if (code !== "ENOENT" && code !== "ENOTDIR") return { real: current, problem: `${current}: ${code}` };
      const st = lstatIfAny(current);
      if (st?.isSymbolicLink()) {
        return { real: current, problem: `${current} is a symbolic link to a path that does not exist` };
      }
      const parent = dirname(current);
      if (parent === current) return { real: join(current, ...rest.reverse()) };
      rest.push(basename(current));
      current = parent;
    }
  }
}

function lstatIfAny(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}

/** How many symbolic links a path may pass through, as the kernel allows (MAXSYMLINKS). */
const MAX_LINKS = 40;

/** A path's components, without empty ones and `.`. */
function components(path: string): string[] {
  return path.split("/").filter((part) => part !== "" && part !== ".");
}

/**
 * Whether `path` (absolute, or relative to `workspace`, a real path) stays inside the workspace
 * all the way to where it leads, as the kernel resolves it: `..` after a link climbs from the
 * link's target, not from the link; a path must enter the workspace through its own directory; and
 * every symbolic link on the way must lead inside again. A path that passes through anything
 * outside (another workspace whose links someone else can swap) is refused even if it comes back.
 * Returns the reason when it does not stay inside.
 */
export function checkInside(workspace: string, path: string): string | undefined {
  const raw = isAbsolute(path) ? path : `${workspace}/${path}`;
  // OpenCode normalizes some paths before it opens them and passes others on as given: both must hold.
  for (const candidate of new Set([resolve(raw), raw])) {
    const problem = walkInside(workspace, candidate, path);
    if (problem) return problem;
  }
  return undefined;
}

function walkInside(workspace: string, raw: string, given: string): string | undefined {
  const outside = (where?: string) =>
    where === undefined
      ? `${given} is outside the task's workspace ${workspace}`
      : `${given} leads to ${where}, outside the task's workspace ${workspace}`;
  const base = components(workspace);
  const parts = components(raw);
  if (base.some((part, i) => parts[i] !== part)) return outside();
  const pending = parts.slice(base.length);
  let current = workspace;
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "..") {
      if (current === workspace) return outside(resolve(dirname(workspace), ...pending));
      current = dirname(current);
      continue;
    }
    const next = join(current, name);
    const st = lstatIfAny(next);
    if (!st) {
      // Not there yet: what follows would be created below `next`.
      const rest = resolve(next, ...pending);
      return isInside(workspace, rest) ? undefined : outside(rest);
    }
    if (!st.isSymbolicLink()) {
      current = next;
      continue;
    }
    links += 1;
    if (links > MAX_LINKS) return `${given}: too many symbolic links (a loop?)`;
    const target = readlinkSync(next);
    if (isAbsolute(target)) {
      const targetParts = components(target);
      if (base.some((part, i) => targetParts[i] !== part)) return outside(resolve(target, ...pending));
      current = workspace;
      pending.unshift(...targetParts.slice(base.length));
    } else {
      pending.unshift(...components(target));
    }
  }
  return undefined;
}

/** Paths an OpenCode file tool acts on, from its arguments. */
export function toolPaths(tool: string, args: Record<string, unknown>): string[] | undefined {
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? [v] : []);
  switch (tool) {
    case "read":
    case "write":
    case "edit":
    case "multiedit":
    case "lsp":
      return str(args.filePath);
    case "list":
    case "ls":
    case "glob":
    case "grep":
      return str(args.path);
    case "patch":
    case "apply_patch": {
      const text = typeof args.patchText === "string" ? args.patchText : "";
      const paths: string[] = [];
      // As OpenCode's parser reads them (a header, then the rest of the line trimmed: no space
      // is needed after the colon), and with leading blanks too, in case a version allows them.
      for (const m of text.matchAll(/^[ \t]*\*\*\* (?:(?:Add|Update|Delete) File|Move to):(.*)$/gm)) {
        const path = (m[1] ?? "").trim();
        if (path !== "") paths.push(path);
      }
      return paths;
    }
    default:
      return undefined;
  }
}

/** Tools that run in OpenCode's own process and take the network. */
const NETWORK_TOOLS = new Set(["webfetch", "websearch", "codesearch"]);

/**
 * Checks a tool call of the agent before OpenCode runs it (the station plugin asks through the
 * bridge): a file tool's paths must really stay inside the task's workspace; webfetch must pass
 * the network policy. bash is confined by the OS sandbox instead. Returns the refusal the agent
 * sees, or undefined to let the call run.
 */
export async function checkToolCall(
  tool: string,
  args: Record<string, unknown>,
  workspace: string,
  gate: NetworkGate | undefined,
): Promise<string | undefined> {
  const paths = toolPaths(tool, args);
  if (paths) {
    for (const path of paths) {
      const problem = checkInside(workspace, path);
      if (problem) return `station sandbox: ${tool} refused: ${problem}`;
    }
    return undefined;
  }
  if (NETWORK_TOOLS.has(tool)) {
    if (!gate) return undefined;
    if (tool !== "webfetch") return `station sandbox: ${tool} is not available in the sandbox`;
    let host: string;
    try {
      const url = new URL(typeof args.url === "string" ? args.url : "");
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme");
      host = url.hostname;
    } catch {
      return `station sandbox: webfetch refused: ${JSON.stringify(args.url)} is not an http(s) URL`;
    }
    const decision = await gate.decide(host);
    return decision.allowed ? undefined : `station sandbox: webfetch refused: ${decision.reason}`;
  }
  return undefined;
}
