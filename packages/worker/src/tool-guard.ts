import { lstatSync, realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { NetworkGate } from "./sandbox-network.js";
import { isInside } from "./workspace.js";

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

/** Whether `path` really (after links) stays inside `workspace` (a real path); the reason if not. */
export function checkInside(workspace: string, path: string): string | undefined {
  const { real, problem } = resolveRealPath(workspace, path);
  if (problem) return problem;
  if (!isInside(workspace, real)) {
    return real === resolve(workspace, path)
      ? `${path} is outside the task's workspace ${workspace}`
      : `${path} leads to ${real}, outside the task's workspace ${workspace}`;
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
      for (const m of text.matchAll(/^\*\*\* (?:Add|Update|Delete) File: (.+)$|^\*\*\* Move to: (.+)$/gm))
        paths.push((m[1] ?? m[2] ?? "").trim());
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
