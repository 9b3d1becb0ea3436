import { z } from "zod";
import { ArtifactRef } from "./artifacts.js";
import { MAX_CANCEL_REASON_LENGTH } from "./limits.js";
import { Timestamp, parseWith } from "./schema-helpers.js";

/** A Station coding session, stored in the sessions KV bucket under its name. */
export const SessionState = z.object({
  sessionName: z.string(),
  opencodeID: z.string(),
  workspaceName: z.string(),
  workspacePath: z.string(),
  created: Timestamp,
  lastUsed: Timestamp,
  messageCount: z.number().int().nonnegative(),
  git: z.object({ url: z.string(), branch: z.string(), lastCommit: z.string() }).optional(),
  org: z.string().optional(),
  scope: z.enum(["agent", "workflow"]).optional(),
  scopeID: z.string().optional(),
  /** Object store key of the latest OpenCode export of this session (restores it on another worker). */
  exportKey: z.string().optional(),
  /** Worker that ran the session last. */
  workerID: z.string().optional(),
  lastTaskID: z.string().optional(),
});
/** A Station coding session. */
export type SessionState = z.infer<typeof SessionState>;

/** An agent context entry, stored in the state KV bucket under `<agentID>.<key>`. */
export const AgentContext = z.object({
  agentID: z.string(),
  key: z.string(),
  value: z.unknown(),
  updated: Timestamp,
  /** Time to live in milliseconds from `updated`. */
  ttl: z.number().int().positive().optional(),
  /** When the entry stops being valid (derived from ttl); readers treat it as absent after. */
  expiresAt: Timestamp.optional(),
});
/** An agent context entry. */
export type AgentContext = z.infer<typeof AgentContext>;

/** A request to cancel a task, published on its cancel subject. */
export const CancelRequest = z.object({
  taskID: z.string(),
  /** Why; quoted in the task's result and `error` event, so at most {@link MAX_CANCEL_REASON_LENGTH} characters. */
  reason: z
    .string()
    .max(MAX_CANCEL_REASON_LENGTH, `must be at most ${MAX_CANCEL_REASON_LENGTH} characters`)
    .meta({ description: `At most ${MAX_CANCEL_REASON_LENGTH} characters (quoted in the result).` })
    .optional(),
  requestedAt: Timestamp.optional(),
  requestedBy: z.string().optional(),
});
/** A request to cancel a task. */
export type CancelRequest = z.infer<typeof CancelRequest>;

/**
 * The cancel request in a message on a cancel subject: a JSON object is a request to cancel, and
 * one that breaks the schema (e.g. a reason over {@link MAX_CANCEL_REASON_LENGTH}) still cancels,
 * with its reason replaced by what was wrong; anything else (not JSON, not an object) is no request.
 */
export function cancelRequestFrom(value: unknown): CancelRequest | undefined {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return undefined;
  const parsed = CancelRequest.safeParse(value);
  if (parsed.success) return parsed.data;
  try {
    parseWith(CancelRequest, value, "cancel request");
  } catch (err) {
    const taskID = (value as { taskID?: unknown }).taskID;
    return {
      taskID: typeof taskID === "string" ? taskID.slice(0, 128) : "",
      reason: `the request was not valid and its reason is not shown: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  return undefined;
}

/** Lifecycle state of a worker. */
export const WorkerState = z.enum(["starting", "running", "draining", "stopped"]);
/** Lifecycle state of a worker. */
export type WorkerState = z.infer<typeof WorkerState>;

/** A worker's presence and load, refreshed on every heartbeat in the workers KV bucket. */
export const WorkerPresence = z.object({
  workerID: z.string(),
  state: WorkerState,
  hostname: z.string(),
  pid: z.number().int(),
  version: z.string(),
  /** Orgs served; empty in single-tenant mode. */
  orgs: z.array(z.string()),
  concurrency: z.number().int().positive(),
  inFlight: z.number().int().nonnegative(),
  completed: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  /** TaskIDs running now. */
  tasks: z.array(z.string()),
  startedAt: Timestamp,
  heartbeatAt: Timestamp,
  /** Milliseconds between heartbeats; a record older than three of these belongs to a dead worker. */
  heartbeatInterval: z.number().int().positive(),
});
/** A worker's presence and load. */
export type WorkerPresence = z.infer<typeof WorkerPresence>;

/** A task that will not be retried again, kept in the dead-letter stream for inspection and replay. */
export const DeadLetter = z.object({
  taskID: z.string(),
  org: z.string().optional(),
  reason: z.string(),
  errorCode: z.string().optional(),
  attempts: z.number().int().nonnegative(),
  /** Subject the task was published on (replay publishes there again). */
  subject: z.string(),
  /**
   * The task message as received, UTF-8, except for an inline `workspace.git.token`, which is
   * removed (see `gitTokenRemoved`): a dead letter is kept for days and readable by the org's
   * dispatchers, a secret is not.
   */
  payload: z.string(),
  /**
   * Where the task message is kept when the dead letter would not fit in a message with it (the
   * server's max_payload): `payload` is then empty and a replay reads the message from here.
   */
  payloadRef: ArtifactRef.optional(),
  /** The task carried `workspace.git.token`; a replay must supply the token again. */
  gitTokenRemoved: z.boolean().optional(),
  streamSeq: z.number().int().nonnegative().optional(),
  workerID: z.string().optional(),
  deadAt: Timestamp,
});
/** A task that will not be retried again. */
export type DeadLetter = z.infer<typeof DeadLetter>;

/**
 * State of a task's lease record. `publishing`: the run is over and its worker is publishing the
 * result; if that worker dies there, the next one finds the result stored (done) or runs the task
 * again.
 */
export const LeaseState = z.enum(["running", "publishing", "failed", "released", "done", "replayed"]);
/** State of a task's lease record. */
export type LeaseState = z.infer<typeof LeaseState>;

/**
 * The lease a worker holds on a task while it runs it, in the leases KV bucket under
 * `task.<taskID>`, written with compare-and-set so that exactly one worker owns a run.
 */
export const TaskLease = z.object({
  taskID: z.string(),
  state: LeaseState,
  /** Runs started so far (a crash counts as a run). */
  attempts: z.number().int().nonnegative(),
  /** Bumped by a dead-letter replay, so the replay's result is not taken for a duplicate. */
  generation: z.number().int().nonnegative().optional(),
  workerID: z.string().optional(),
  /** Task stream sequence of the message being run. */
  streamSeq: z.number().int().nonnegative().optional(),
  /** Epoch ms after which a running lease is considered abandoned. */
  expiresAt: z.number().optional(),
  startedAt: Timestamp.optional(),
  lastError: z.string().optional(),
});
/** The lease a worker holds on a task while it runs it. */
export type TaskLease = z.infer<typeof TaskLease>;

/** The lock that keeps two tasks of one session from running at once, under `session.<name>`. */
export const SessionLock = z.object({
  taskID: z.string(),
  workerID: z.string(),
  /** Epoch ms after which the lock is considered abandoned. */
  expiresAt: z.number(),
});
/** The lock that keeps two tasks of one session from running at once. */
export type SessionLock = z.infer<typeof SessionLock>;
