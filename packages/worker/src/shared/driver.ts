import type { ObjectStore } from "@nats-io/obj";
import type {
  AgentContextStore,
  ArtifactRef,
  EventDraft,
  ResolvedTask,
  SessionStore,
  TokenUsage,
} from "@station-coding/protocol";
import type { Logger } from "pino";

/** What the runtime knows about a session when it asks the driver to open it. */
export interface OpenSessionRequest {
  task: ResolvedTask;
  /** The org the task belongs to, as the worker serving it knows it (undefined: single-tenant). */
  org?: string | undefined;
  /** Absolute path of the prepared workspace. */
  directory: string;
  /** The agent session stored for this Station session, when `continue` is not false. */
  previous?: { opencodeID: string; exportKey?: string };
  signal: AbortSignal;
  emit: (event: EventDraft) => void;
  logger: Logger;
}

/** The agent session a task runs in. */
export interface OpenedSession {
  /** The agent's own session id (OpenCode `ses_…`). */
  opencodeID: string;
  /** True when `previous` was reused as is. */
  reused: boolean;
  /** True when the conversation was restored from an export on this worker. */
  restored?: boolean;
  /** True when `previous` could not be reused or restored and a new session began. */
  replaced?: boolean;
}

/** One prompt to run in an opened session. */
export interface PromptRequest {
  task: ResolvedTask;
  /** The org the task belongs to (undefined: single-tenant). */
  org?: string | undefined;
  session: OpenedSession;
  directory: string;
  prompt: string;
  /** Aborted on cancel, timeout, lost lease or shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Publishes a live event (never blocks; the runtime stamps taskID, seq and timestamp). */
  emit: (event: EventDraft) => void;
  /** Stores a large blob (e.g. a full tool output) as a task artifact and returns its reference. */
  storeArtifact: (name: string, data: Uint8Array, kind: string) => Promise<ArtifactRef>;
  logger: Logger;
}

/** What a finished prompt produced. */
export interface PromptResult {
  /** The agent's final text. */
  text: string;
  /** Tool calls made during the turn. */
  toolCalls: number;
  tokens?: TokenUsage;
  cost?: number;
  model?: string;
  provider?: string;
  finishReason?: string;
  /** Model steps (assistant messages) in the turn. */
  steps?: number;
}

/**
 * The agent a worker drives (OpenCode in production, a scripted driver in tests).
 *
 * Failures are thrown as `StationError`s whose `retryable` flag decides between a retry and an
 * error result; a plain Error counts as not retryable. Both methods must honour `signal`.
 */
export interface AgentDriver {
  /** Opens or reuses the agent session for a task in `directory`. */
  openSession(request: OpenSessionRequest): Promise<OpenedSession>;
  /** Runs the prompt, emitting events while it runs, and returns the final text and metrics. */
  prompt(request: PromptRequest): Promise<PromptResult>;
  /** Called after a task of a session ends, e.g. to export the session for other workers. */
  afterTask?(request: {
    task: ResolvedTask;
    /** The org the task belongs to (undefined: single-tenant). */
    org?: string | undefined;
    session: OpenedSession;
    directory: string;
  }): Promise<{ exportKey?: string } | void>;
  /**
   * Whether the agent's tools run in the OS sandbox, and the directory they are confined under.
   * Undefined for drivers that run no tools (the worker then reports nothing about it).
   */
  readonly sandbox?: { mode: "on" | "off"; workspaceRoot?: string };
  /**
   * Runs the worker's own work on a workspace (git, staged inputs, collecting changes) while no
   * tool call of any task runs in it, so that a symbolic link an agent swaps meanwhile cannot
   * redirect it. Rejects with the signal's reason when it aborts first, or a HoldAbandonedError
   * after `maxWait` ms. Drivers without tools need not implement it.
   */
  holdWorkspace?<T>(
    directory: string,
    work: () => Promise<T>,
    options?: { signal?: AbortSignal; maxWait?: number },
  ): Promise<T>;
  /** Called once by the worker after it connected, before the first task. */
  attach?(runtime: DriverRuntime): void;
  /** Releases the driver's resources when the worker stops. */
  close?(): Promise<void>;
}

/** Worker facilities a driver may use, handed over once the worker is connected. */
export interface DriverRuntime {
  /** Agent context store of a namespace (undefined org = single-tenant). */
  contextStore(org: string | undefined): AgentContextStore | undefined;
  /** Session store of a namespace. */
  sessionStore(org: string | undefined): SessionStore | undefined;
  /** Object store (artifacts bucket) of a namespace. */
  objectStore(org: string | undefined): ObjectStore | undefined;
}
