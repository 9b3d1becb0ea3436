import { randomUUID } from "node:crypto";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { toolPaths } from "./tool-guard.js";

/**
 * How a tool call uses its workspace while it runs: `exclusive` for bash, the only tool that can
 * create or swap symbolic links there; `shared` for OpenCode's file tools, which follow links but
 * never make them.
 */
export type HoldMode = "shared" | "exclusive";

/**
 * The hold a tool call needs, or undefined for tools that touch no workspace path (webfetch,
 * todowrite, the station tools) and for `task`, whose subagent's own tool calls take holds of
 * their own: a `task` call holding one would wait on its child's calls forever.
 */
export function toolHoldMode(tool: string): HoldMode | undefined {
  if (tool === "bash") return "exclusive";
  return toolPaths(tool, {}) !== undefined ? "shared" : undefined;
}

/** The key of one tool call's hold: the session that made the call, and its call id. */
export function holdKey(sessionID: string, callID: string): string {
  return `${sessionID}\u0000${callID}`;
}

/** The session and call id of a {@link holdKey}. */
export function parseHoldKey(key: string): { sessionID: string; callID: string } {
  const at = key.indexOf("\u0000");
  return { sessionID: key.slice(0, at), callID: key.slice(at + 1) };
}

/** What a tool call asks for. */
export interface HoldRequest {
  /** The task's workspace; holds are kept per real path, so two spellings of one directory meet. */
  workspace: string;
  mode: HoldMode;
  /** The task the call belongs to; {@link WorkspaceExclusion.releaseOwner} ends all of its holds. */
  owner: string;
  /** One per tool call ({@link holdKey}); asking again with a key already known is the same request. */
  key: string;
  /** Gives up waiting (the caller went away); a hold already granted is not affected. */
  signal?: AbortSignal;
}

/** Why a waiting request was not granted: its task ended, its caller went away, or the worker stops. */
export class HoldAbandonedError extends Error {
  override name = "HoldAbandonedError";
}

interface Entry {
  key: string;
  owner: string;
  mode: HoldMode;
  /** Real path of the workspace. */
  lane: string;
  state: "waiting" | "held";
  granted: Promise<void>;
  grant: () => void;
  abandon: (reason: string) => void;
}

interface Lane {
  holders: Set<Entry>;
  exclusive: boolean;
  queue: Entry[];
}

/**
 * A readers-writer exclusion per workspace between the agent's tool calls, which closes the race
 * between the file tools' path check and OpenCode's own open: while a bash call runs, no file
 * tool runs in its workspace, and while file tools run, no bash call does. Since only bash can
 * change where a path leads (its processes die with the call), a path checked inside a hold is the
 * path opened inside it.
 *
 * Requests are granted in arrival order (consecutive shared ones together), so neither bash calls
 * nor file tools starve. Releasing is idempotent per key, and nothing waits on anything but
 * holds: a hold is released when its call ends ({@link release}), when its task ends
 * ({@link releaseOwner}, which also abandons the task's waiting requests), or when the worker
 * stops ({@link close}).
 */
export class WorkspaceExclusion {
  private readonly entries = new Map<string, Entry>();
  private readonly lanes = new Map<string, Lane>();
  private closed = false;

  /**
   * Resolves once the hold is granted.
   *
   * @throws HoldAbandonedError when the request's task ends, its signal aborts or the exclusion
   *   closes before the hold is granted.
   */
  acquire(request: HoldRequest): Promise<void> {
    const known = this.entries.get(request.key);
    if (known) return known.granted;
    if (this.closed) return Promise.reject(new HoldAbandonedError("the worker is stopping"));
    let grant!: () => void;
    let abandon!: (reason: string) => void;
    const granted = new Promise<void>((resolveGrant, reject) => {
      grant = resolveGrant;
      abandon = (reason) => reject(new HoldAbandonedError(reason));
    });
    // A rejection nobody awaits (a duplicate request that went away) must not crash the worker.
    granted.catch(() => undefined);
    const { key, owner, mode, signal } = request;
    const entry: Entry = {
      key,
      owner,
      mode,
      lane: lanePath(request.workspace),
      state: "waiting",
      granted,
      grant,
      abandon,
    };
    this.entries.set(key, entry);
    this.enqueue(entry);
    if (signal && entry.state === "waiting") {
      const onAbort = () => {
        if (entry.state === "waiting")
          this.drop([entry], "the tool call went away while waiting for its workspace");
      };
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        const forget = () => signal.removeEventListener("abort", onAbort);
        granted.then(forget, forget);
      }
    }
    return granted;
  }

  /**
   * Runs a tool call's `check` inside the hold the tool needs (none for tools that touch no
   * path): the refusal the agent sees, or undefined with the hold kept until the call ends. A
   * refused call, or one whose request was abandoned, holds nothing afterwards.
   */
  async guard(
    tool: string,
    request: Omit<HoldRequest, "mode">,
    check: () => Promise<string | undefined>,
  ): Promise<string | undefined> {
    const mode = toolHoldMode(tool);
    if (mode) {
      try {
        await this.acquire({ ...request, mode });
      } catch (err) {
        if (err instanceof HoldAbandonedError) return `station sandbox: ${tool} refused: ${err.message}`;
        throw err;
      }
      if (request.signal?.aborted) {
        this.release(request.key);
        return `station sandbox: ${tool} refused: the tool call went away`;
      }
    }
    let refusal: string | undefined;
    try {
      refusal = await check();
    } catch (err) {
      if (mode) this.release(request.key);
      throw err;
    }
    if (refusal !== undefined && mode) this.release(request.key);
    return refusal;
  }

  /**
   * Runs `work` holding `workspace` alone (the worker's own git and file work there).
   *
   * @throws the signal's reason when it aborts first; HoldAbandonedError after `maxWait` ms or
   *   when the exclusion closes.
   */
  async exclusively<T>(
    workspace: string,
    work: () => Promise<T>,
    options: { signal?: AbortSignal; maxWait?: number } = {},
  ): Promise<T> {
    const key = `worker\u0000${randomUUID()}`;
    const gaveUp = new AbortController();
    const timer =
      options.maxWait === undefined ? undefined : setTimeout(() => gaveUp.abort(), options.maxWait);
    const signal = AbortSignal.any([gaveUp.signal, ...(options.signal ? [options.signal] : [])]);
    try {
      await this.acquire({ workspace, mode: "exclusive", owner: key, key, signal });
    } catch (err) {
      options.signal?.throwIfAborted();
      if (gaveUp.signal.aborted)
        throw new HoldAbandonedError(`${workspace} stayed busy with tool calls for ${options.maxWait} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    try {
      return await work();
    } finally {
      this.release(key);
    }
  }

  /** Ends one call's hold (or abandons its waiting request). False when the key is unknown. */
  release(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.drop([entry], "the tool call ended while waiting for its workspace");
    return true;
  }

  /** Ends every hold of a task and abandons its waiting requests; returns how many there were. */
  releaseOwner(owner: string): number {
    const mine = [...this.entries.values()].filter((entry) => entry.owner === owner);
    this.drop(mine, "the task ended while this tool call waited for its workspace");
    return mine.length;
  }

  /** The keys of a task's granted holds of `mode`. */
  held(owner: string, mode: HoldMode): string[] {
    return [...this.entries.values()]
      .filter((e) => e.owner === owner && e.state === "held" && e.mode === mode)
      .map((e) => e.key);
  }

  /** Abandons a task's waiting requests (its holds stay until its calls end); returns how many. */
  abandonWaiting(owner: string): number {
    const waiting = [...this.entries.values()].filter((e) => e.owner === owner && e.state === "waiting");
    this.drop(waiting, "the task was stopped while this tool call waited for its workspace");
    return waiting.length;
  }

  /** Abandons every request and forgets every hold; later requests are refused. */
  close(): void {
    this.closed = true;
    this.drop([...this.entries.values()], "the worker is stopping");
  }

  /** The holds and waiting requests on a workspace (by its real path), for tests and diagnostics. */
  state(workspace: string): {
    held: { key: string; mode: HoldMode }[];
    waiting: { key: string; mode: HoldMode }[];
  } {
    const lane = this.lanes.get(workspace);
    const view = (e: Entry) => ({ key: e.key, mode: e.mode });
    return { held: [...(lane?.holders ?? [])].map(view), waiting: (lane?.queue ?? []).map(view) };
  }

  private enqueue(entry: Entry): void {
    let lane = this.lanes.get(entry.lane);
    if (!lane) {
      lane = { holders: new Set(), exclusive: false, queue: [] };
      this.lanes.set(entry.lane, lane);
    }
    lane.queue.push(entry);
    this.pump(entry.lane, lane);
  }

  /** Grants the longest prefix of the queue that is compatible with the current holders. */
  private pump(name: string, lane: Lane): void {
    for (;;) {
      const head = lane.queue[0];
      if (!head) break;
      if (head.mode === "exclusive" ? lane.holders.size > 0 : lane.exclusive) break;
      lane.queue.shift();
      lane.holders.add(head);
      lane.exclusive = head.mode === "exclusive";
      head.state = "held";
      head.grant();
      if (lane.exclusive) break;
    }
    if (lane.holders.size === 0 && lane.queue.length === 0) this.lanes.delete(name);
  }

  /**
   * Forgets `dropped` (abandoning those not granted yet), then grants what that made possible: all
   * of them first, so that a task's own waiting request is never granted by its own release.
   */
  private drop(dropped: readonly Entry[], reason: string): void {
    const touched = new Set<string>();
    for (const entry of dropped) {
      if (this.entries.get(entry.key) !== entry) continue;
      this.entries.delete(entry.key);
      if (entry.state !== "held") entry.abandon(reason);
      const lane = this.lanes.get(entry.lane);
      if (!lane) continue;
      touched.add(entry.lane);
      if (entry.state === "held") {
        lane.holders.delete(entry);
        if (lane.holders.size === 0) lane.exclusive = false;
      } else {
        lane.queue.splice(lane.queue.indexOf(entry), 1);
      }
    }
    for (const name of touched) {
      const lane = this.lanes.get(name);
      if (lane) this.pump(name, lane);
    }
  }
}

/**
 * The real path of a workspace, resolved synchronously so that requests queue in the order they
 * arrived; the path as given (normalized) when it cannot be resolved.
 */
function lanePath(workspace: string): string {
  try {
    return realpathSync(workspace);
  } catch {
    return resolve(workspace);
  }
}
