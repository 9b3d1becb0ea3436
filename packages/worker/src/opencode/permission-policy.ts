import { checkInside } from "../sandbox/tool-guard.js";

/** A permission prompt raised by the agent. */
export interface PermissionAsk {
  id: string;
  permission: string;
  patterns: string[];
  metadata?: Record<string, unknown>;
}

/** How a prompt is answered. */
export interface PermissionDecision {
  reply: "once" | "always" | "reject";
  /** Said to the agent on reject; shown in the `permission` event. */
  message?: string;
}

/** Decides a permission prompt of a task running in `directory`. */
export type PermissionPolicy = (ask: PermissionAsk, directory: string) => PermissionDecision;

const NO_HUMAN = "no human is available to approve this in station-coding; stay inside the workspace";

/** Permissions that act on paths (the patterns are file paths or globs). */
const PATH_PERMISSIONS = new Set(["read", "edit", "write", "glob", "grep", "list", "external_directory"]);

/**
 * The default policy: allow what stays inside the workspace, reject everything else with a message
 * saying no human is available. Commands (`bash`) and paths outside the workspace are rejected.
 * Paths are judged by where they really lead: a symbolic link inside the workspace that points
 * out of it is outside.
 */
export const workspaceOnlyPolicy: PermissionPolicy = (ask, directory) => {
  if (!PATH_PERMISSIONS.has(ask.permission) || ask.patterns.length === 0) {
    return { reply: "reject", message: `${ask.permission}: ${NO_HUMAN}` };
  }
  const inside = ask.patterns.every((pattern) => {
    const base = pattern.replace(/[*?[{].*$/, "");
    return checkInside(directory, base === "" ? "." : base) === undefined;
  });
  return inside
    ? { reply: "once" }
    : { reply: "reject", message: `${ask.permission} ${ask.patterns.join(", ")}: ${NO_HUMAN}` };
};

/** A policy that approves everything (for trusted setups; not the default). */
export const allowAllPolicy: PermissionPolicy = () => ({ reply: "once" });
