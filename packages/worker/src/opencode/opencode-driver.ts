import { execFile } from "node:child_process";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createOpencodeClient } from "@opencode-ai/sdk/v2";
import type { OpencodeClient } from "@opencode-ai/sdk/v2";
import { context, trace } from "@opentelemetry/api";
import type { Context, Span } from "@opentelemetry/api";
import { ErrorCodes, StationError, sessionExportKey } from "@station-coding/protocol";
import type { EventDraft, ResolvedTask } from "@station-coding/protocol";
import type { Logger } from "pino";
import { pino } from "pino";
import type {
  AgentDriver,
  DriverRuntime,
  OpenSessionRequest,
  OpenedSession,
  PromptRequest,
  PromptResult,
} from "../shared/driver.js";
import { checkModelAndAgent } from "./opencode-catalog.js";
import { TurnEventMapper, withoutStack } from "./opencode-events.js";
import type { OpenCodeEvent } from "./opencode-events.js";
import { OpenCodeServer } from "./opencode-server.js";
import type { OpenCodeServerOptions } from "./opencode-server.js";
import type { PermissionPolicy } from "./permission-policy.js";
import { workspaceOnlyPolicy } from "./permission-policy.js";
import { resolveSandbox } from "../sandbox/sandbox.js";
import type { ResolvedSandbox, SandboxOptions } from "../sandbox/sandbox.js";
import { NetworkGate, SandboxProxy } from "../sandbox/sandbox-network.js";
import { StationToolsBridge } from "./station-tools-bridge.js";
import { summarizeTurn } from "./turn-summary.js";
import type { MessageInfo, MessageWithParts } from "./turn-summary.js";
import type { GuardedCall, ToolScope } from "./station-tools-bridge.js";
import { checkToolCall, toolPaths } from "../sandbox/tool-guard.js";
import { callMarker, killCallProcesses } from "../sandbox/tool-processes.js";
import { WorkspaceExclusion, holdKey, parseHoldKey } from "../sandbox/workspace-exclusion.js";
import { defaultWorkspaceDir } from "../workspace/workspace.js";

const run = promisify(execFile);

/** Options of an {@link OpenCodeDriver}. */
export interface OpenCodeDriverOptions {
  /** Use an existing `opencode serve` at this URL instead of starting one. */
  url?: string;
  /** Basic-auth password of the external server. */
  password?: string;
  /** Options of the managed server (ignored with `url`). */
  server?: Omit<OpenCodeServerOptions, "logger">;
  /** How permission and question prompts are answered. @default allow inside the workspace, reject else */
  permissionPolicy?: PermissionPolicy;
  /** Largest tool output inlined in a `tool_end` event, in bytes. @default 16 KiB */
  maxInlineOutput?: number;
  /**
   * The OS sandbox of the agent's tools (docs/security.md). On by default; the driver refuses to
   * start where it cannot work unless `mode: "off"` is set. @default { mode: "on", network: "allow" }
   */
  sandbox?: SandboxOptions;
  /**
   * Directory under which the worker keeps its workspaces (the worker's `workspaceDir`): the only
   * one the sandboxed server can write. @default $TMPDIR/station-coding/workspaces
   */
  workspaceRoot?: string;
  /** How often the session status is polled besides the event stream (ms). @default 1000 */
  pollInterval?: number;
  /** How long to wait for a session to go idle after an abort (ms). @default 10_000 */
  abortWait?: number;
  logger?: Logger;
}

/** Driver options with every default applied (see {@link resolveOpenCodeDriverOptions}). */
export type ResolvedOpenCodeDriverOptions = OpenCodeDriverOptions &
  Required<
    Pick<
      OpenCodeDriverOptions,
      "permissionPolicy" | "maxInlineOutput" | "workspaceRoot" | "pollInterval" | "abortWait" | "logger"
    >
  >;

/** Compiles driver options: every default of the driver is applied here and nowhere else. */
export function resolveOpenCodeDriverOptions(
  options: OpenCodeDriverOptions = {},
): ResolvedOpenCodeDriverOptions {
  return {
    ...options,
    permissionPolicy: options.permissionPolicy ?? workspaceOnlyPolicy,
    maxInlineOutput: options.maxInlineOutput ?? 16 * 1024,
    workspaceRoot: options.workspaceRoot ?? defaultWorkspaceDir(),
    pollInterval: options.pollInterval ?? 1_000,
    abortWait: options.abortWait ?? 10_000,
    logger: options.logger ?? pino({ level: process.env.LOG_LEVEL ?? "info" }),
  };
}

interface Turn {
  directory: string;
  mapper: TurnEventMapper;
  emit: (event: EventDraft) => void;
  wake: () => void;
  tools: Map<string, Span>;
  /** The trace context of the prompt's caller (the task's span), parent of the tool spans. */
  traceContext: Context;
}

/** The station tools plugin file shipped with this package. */
export function stationToolsPluginPath(): string {
  return fileURLToPath(new URL("../../plugin/station-tools.js", import.meta.url));
}

/**
 * Drives OpenCode through `opencode serve`: one event subscription per worker routed by session,
 * prompts sent with `prompt_async`, every step mapped to live events, the result computed from
 * the session's messages, permission prompts answered by policy, cancel/timeout via abort.
 */
export class OpenCodeDriver implements AgentDriver {
  private client: OpencodeClient;
  private readonly stopEvents = new AbortController();
  private eventLoop: Promise<void> | undefined;
  private runtime: DriverRuntime | undefined;
  private connected = false;

  private constructor(
    private baseUrl: string,
    private readonly o: ResolvedOpenCodeDriverOptions,
    private readonly logger: Logger,
    private readonly server: OpenCodeServer | undefined,
    private readonly bridge: StationToolsBridge,
    private readonly scopes: Map<string, ToolScope>,
    private readonly turns: Map<string, Turn>,
    private readonly resolvedSandbox: ResolvedSandbox,
    private readonly workspaceRoot: string,
    private readonly proxy: SandboxProxy | undefined,
    private readonly runDir: string | undefined,
    private readonly exclusion: WorkspaceExclusion,
  ) {
    this.client = this.makeClient();
  }

  /**
   * Starts (or connects to) OpenCode and its event subscription. With the sandbox on (the default)
   * it first proves the sandbox works here and fails with SANDBOX_UNAVAILABLE when it does not.
   */
  static async start(options: OpenCodeDriverOptions = {}): Promise<OpenCodeDriver> {
    const o = resolveOpenCodeDriverOptions(options);
    const logger = o.logger;
    const sandbox = await resolveSandbox(options.sandbox);
    const on = sandbox.mode === "on";
    if (on && options.url) {
      throw new StationError(
        ErrorCodes.InvalidConfig,
        `opencode url ${options.url}: the sandbox confines only the opencode serve the worker starts; drop the url, or set sandbox: off to use an external server unconfined`,
      );
    }
    const workspaceRoot = o.workspaceRoot;
    const gate = on ? new NetworkGate(sandbox.network, sandbox.allowedHosts) : undefined;
    let runDir: string | undefined;
    let proxy: SandboxProxy | undefined;
    if (on && sandbox.network !== "deny" && gate) {
      runDir = await mkdtemp(join(tmpdir(), "station-sandbox-"));
      await chmod(runDir, 0o700);
      proxy = new SandboxProxy(
        join(runDir, "proxy.sock"),
        gate,
        logger.child({ component: "sandbox-proxy" }),
      );
      await proxy.start();
    }
    const scopes = new Map<string, ToolScope>();
    const turns = new Map<string, Turn>();
    const exclusion = new WorkspaceExclusion();
    // The check runs inside the call's hold on its workspace, so the path it approves is the path
    // OpenCode opens. A refusal of the sandbox is a decision like a permission prompt's: the agent
    // sees it as the tool's error, and the task's client sees it as a permission event.
    const guard = gate
      ? async (scope: ToolScope, tool: string, args: Record<string, unknown>, call: GuardedCall) => {
          const { callID } = call;
          const refusal = await exclusion.guard(
            tool,
            {
              workspace: scope.workspace,
              owner: scope.opencodeID,
              key: holdKey(call.sessionID, callID),
              signal: call.signal,
            },
            () => checkToolCall(tool, args, scope.workspace, gate),
          );
          if (refusal !== undefined) {
            turns.get(scope.opencodeID)?.emit({
              type: "permission",
              content: refusal,
              permission: {
                id: `sandbox-${callID}`,
                kind: "permission",
                permission: tool,
                patterns: toolPaths(tool, args) ?? [],
                decision: "reject",
                reason: refusal,
              },
            });
          }
          return refusal;
        }
      : undefined;
    const bridge = new StationToolsBridge(
      (id) => scopes.get(id),
      logger,
      undefined,
      guard,
      (sessionID, callID) => exclusion.release(holdKey(sessionID, callID)),
    );
    await bridge.start();
    let server: OpenCodeServer | undefined;
    let url = options.url;
    if (!url) {
      server = await OpenCodeServer.start({
        ...options.server,
        logger,
        config: {
          plugin: [`file://${stationToolsPluginPath()}`],
          ...(options.server?.config ?? {}),
        },
        env: { ...options.server?.env, STATION_TOOLS_URL: bridge.url, STATION_TOOLS_TOKEN: bridge.token },
        ...(on
          ? {
              sandbox: {
                sandbox,
                workspaceRoot,
                visible: [stationToolsPluginPath()],
                ...(proxy ? { proxySocket: proxy.socketPath } : {}),
              },
            }
          : {}),
      }).catch(async (err: unknown) => {
        await bridge.stop();
        await proxy?.stop();
        if (runDir) await rm(runDir, { recursive: true, force: true });
        throw err;
      });
      url = server.url;
    }
    if (!on)
      logger.warn("sandbox: off; the agent's tools run unconfined, with everything the worker can reach");
    const driver = new OpenCodeDriver(
      url,
      o,
      logger,
      server,
      bridge,
      scopes,
      turns,
      sandbox,
      workspaceRoot,
      proxy,
      runDir,
      exclusion,
    );
    server?.onRestart((next) => {
      driver.switchServer(next);
    });
    await driver.checkHealth();
    driver.eventLoop = driver.followEvents();
    return driver;
  }

  /** URL of the OpenCode server in use. */
  get url(): string {
    return this.baseUrl;
  }

  /** The managed server, when the driver started one. */
  get managedServer(): OpenCodeServer | undefined {
    return this.server;
  }

  /** Whether the agent's tools run in the OS sandbox, and the workspace root they are confined under. */
  get sandbox(): { mode: "on" | "off"; workspaceRoot?: string } {
    return this.resolvedSandbox.mode === "on"
      ? { mode: "on", workspaceRoot: this.workspaceRoot }
      : { mode: "off" };
  }

  async holdWorkspace<T>(
    directory: string,
    work: () => Promise<T>,
    options: { signal?: AbortSignal; maxWait?: number } = {},
  ): Promise<T> {
    return this.exclusion.exclusively(directory, work, options);
  }

  /** The holds and waiting requests on a workspace (its real path), for diagnostics and tests. */
  workspaceHolds(directory: string): ReturnType<WorkspaceExclusion["state"]> {
    return this.exclusion.state(directory);
  }

  /** Whether the event subscription is connected. */
  get eventsConnected(): boolean {
    return this.connected;
  }

  attach(runtime: DriverRuntime): void {
    this.runtime = runtime;
    this.bridge.setHandler({
      kvGet: async (scope, key) =>
        (await runtime.contextStore(scope.org)?.get(scope.agentID, key))?.value ?? null,
      kvSet: async (scope, key, value, ttl) => {
        const store = runtime.contextStore(scope.org);
        if (!store) throw new Error("agent context store is not available");
        await store.set(scope.agentID, key, value, ttl !== undefined ? { ttl } : {});
      },
      sessionInfo: async (scope) => {
        const stored = await runtime.sessionStore(scope.org)?.get(scope.sessionName);
        return {
          name: scope.sessionName,
          opencodeID: scope.opencodeID,
          messageCount: stored?.value.messageCount ?? 0,
          workspace: scope.workspace,
          taskID: scope.taskID,
        };
      },
    });
  }

  private makeClient(): OpencodeClient {
    const headers = this.o.password
      ? { authorization: `Basic ${Buffer.from(`opencode:${this.o.password}`).toString("base64")}` }
      : this.server?.authHeaders();
    return createOpencodeClient({ baseUrl: this.baseUrl, ...(headers ? { headers } : {}) });
  }

  private switchServer(url: string): void {
    this.logger.warn({ url }, "opencode server restarted; reconnecting");
    this.baseUrl = url;
    this.client = this.makeClient();
    // Running turns lost their server: fail them retryably.
    for (const turn of this.turns.values()) turn.wake();
  }

  private async checkHealth(): Promise<void> {
    const res = await this.client.global.health().catch((err: unknown) => ({ error: err, data: undefined }));
    if (!res.data) {
      throw new StationError(
        ErrorCodes.AgentUnavailable,
        `opencode server at ${this.baseUrl} is not reachable`,
        {
          retryable: true,
          cause: res.error,
        },
      );
    }
  }

  /** One subscription to every directory's events, routed to running turns by session id. */
  private async followEvents(): Promise<void> {
    const signal = this.stopEvents.signal;
    while (!signal.aborted) {
      try {
        const sse = await this.client.global.event({ signal, sseMaxRetryAttempts: 1 });
        this.connected = true;
        for await (const item of sse.stream) {
          const payload = (item as { payload?: OpenCodeEvent }).payload;
          if (payload) this.route(payload);
        }
      } catch (err) {
        if (signal.aborted) break;
        this.logger.warn({ err: String(err) }, "opencode event stream failed; reconnecting");
      }
      this.connected = false;
      for (const turn of this.turns.values()) turn.wake();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }

  private route(event: OpenCodeEvent): void {
    const p = event.properties ?? {};
    const sessionID =
      (p.sessionID as string | undefined) ??
      (p.part as { sessionID?: string } | undefined)?.sessionID ??
      (p.info as { sessionID?: string } | undefined)?.sessionID;
    if (!sessionID) return;
    if (event.type === "message.part.updated") this.releaseFinishedTool(event);
    const turn = this.turns.get(sessionID);
    if (!turn) return;
    switch (event.type) {
      case "session.idle":
        turn.wake();
        return;
      case "session.status":
        if ((p.status as { type?: string } | undefined)?.type === "idle") turn.wake();
        return;
      case "permission.asked":
        void this.answerPermission(turn, p);
        return;
      case "question.asked":
        void this.rejectQuestion(turn, p);
        return;
      case "message.updated":
        if ((p.info as MessageInfo | undefined)?.error) turn.wake();
        turn.mapper.handle(event);
        return;
      default:
        this.traceTool(turn, event);
        turn.mapper.handle(event);
    }
  }

  /**
   * Ends a tool call's hold on its workspace once OpenCode reports it over, including calls that
   * threw (the plugin's `tool.execute.after` does not run for those) and subagents' calls. Not a
   * call that an abort cut short (`interrupted`): OpenCode reports those over while they may still
   * run, so they keep their hold until their task ends.
   */
  private releaseFinishedTool(event: OpenCodeEvent): void {
    const part = event.properties.part as
      | {
          type?: string;
          sessionID?: string;
          callID?: string;
          state?: { status?: string; metadata?: { interrupted?: boolean } };
        }
      | undefined;
    if (part?.type !== "tool" || !part.sessionID || !part.callID) return;
    const status = part.state?.status;
    const over = status === "completed" || (status === "error" && part.state?.metadata?.interrupted !== true);
    if (over) this.exclusion.release(holdKey(part.sessionID, part.callID));
  }

  /** Per-tool child spans with the tool's own start and end times. */
  private traceTool(turn: Turn, event: OpenCodeEvent): void {
    if (event.type !== "message.part.updated") return;
    const part = event.properties.part as
      | {
          type?: string;
          tool?: string;
          callID?: string;
          state?: { status?: string; time?: { start?: number; end?: number } };
        }
      | undefined;
    if (part?.type !== "tool" || !part.callID || !part.state) return;
    const { status, time } = part.state;
    if (status === "running" && !turn.tools.has(part.callID)) {
      const span = trace
        .getTracer("station-coding-worker")
        .startSpan(
          `opencode.tool.${part.tool ?? "unknown"}`,
          { startTime: time?.start ?? Date.now() },
          turn.traceContext,
        );
      span.setAttribute("opencode.tool.call_id", part.callID);
      turn.tools.set(part.callID, span);
    }
    if ((status === "completed" || status === "error") && turn.tools.has(part.callID)) {
      const span = turn.tools.get(part.callID);
      span?.setAttribute("opencode.tool.status", status);
      span?.end(time?.end ?? Date.now());
      turn.tools.delete(part.callID);
    }
  }

  private async answerPermission(turn: Turn, p: Record<string, unknown>): Promise<void> {
    const ask = {
      id: String(p.id),
      permission: String(p.permission),
      patterns: Array.isArray(p.patterns) ? (p.patterns as string[]) : [],
      metadata: (p.metadata as Record<string, unknown> | undefined) ?? {},
    };
    const decision = this.o.permissionPolicy(ask, turn.directory);
    const res = await this.client.permission
      .reply({
        requestID: ask.id,
        directory: turn.directory,
        reply: decision.reply,
        ...(decision.message ? { message: decision.message } : {}),
      })
      .catch((err: unknown) => ({ error: err }));
    if (res.error)
      this.logger.error(
        { err: res.error, permission: ask.permission },
        "could not answer a permission prompt",
      );
    turn.emit({
      type: "permission",
      content: decision.message ?? `${ask.permission} allowed`,
      permission: {
        id: ask.id,
        kind: "permission",
        permission: ask.permission,
        patterns: ask.patterns,
        decision: decision.reply,
        ...(decision.message ? { reason: decision.message } : {}),
      },
    });
  }

  private async rejectQuestion(turn: Turn, p: Record<string, unknown>): Promise<void> {
    const id = String(p.id);
    const res = await this.client.question
      .reject({ requestID: id, directory: turn.directory })
      .catch((err: unknown) => ({ error: err }));
    if (res.error) this.logger.error({ err: res.error }, "could not answer a question prompt");
    const reason = "no human is available to answer questions in station-coding; decide and continue";
    turn.emit({
      type: "permission",
      content: reason,
      permission: { id, kind: "question", decision: "reject", reason },
    });
  }

  async openSession(request: OpenSessionRequest): Promise<OpenedSession> {
    const { directory, previous, task } = request;
    // A managed server being restarted after a crash is waited for, not failed against.
    await this.server?.whenReady();
    if (previous) {
      const existing = await this.client.session
        .get({ sessionID: previous.opencodeID, directory })
        .catch(() => undefined);
      if (existing?.data) return { opencodeID: previous.opencodeID, reused: true };
      if (
        previous.exportKey &&
        (await this.restore(request.org, previous.opencodeID, previous.exportKey, request.logger))
      ) {
        const restored = await this.client.session
          .get({ sessionID: previous.opencodeID, directory })
          .catch(() => undefined);
        if (restored?.data) return { opencodeID: previous.opencodeID, reused: false, restored: true };
      }
    }
    const created = await this.client.session
      .create({ directory, title: `station ${task.session.name}` })
      .catch((err: unknown) => ({ data: undefined, error: err }));
    if (!created.data) {
      throw new StationError(
        ErrorCodes.AgentUnavailable,
        `opencode could not create a session: ${describe(created.error)}`,
        {
          retryable: true,
        },
      );
    }
    return { opencodeID: created.data.id, reused: false, ...(previous ? { replaced: true } : {}) };
  }

  async prompt(request: PromptRequest): Promise<PromptResult> {
    const { task, directory, signal, emit, session } = request;
    const sessionID = session.opencodeID;
    const before = await this.messages(sessionID, directory);
    const known = new Set(before.map((m) => m.info.id));
    let wake: () => void = () => undefined;
    const turn: Turn = {
      directory,
      emit,
      wake: () => wake(),
      tools: new Map(),
      traceContext: context.active(),
      mapper: new TurnEventMapper(
        emit,
        {
          maxInline: this.o.maxInlineOutput,
          store: (name, data) => request.storeArtifact(name, data, "tool-output"),
        },
        known,
        request.logger,
      ),
    };
    if (task.model || task.agent !== undefined)
      await checkModelAndAgent(this.client, task, directory, request.logger);
    this.turns.set(sessionID, turn);
    this.scopes.set(sessionID, {
      org: request.org,
      agentID: task.agentID,
      sessionName: task.session.name,
      opencodeID: sessionID,
      workspace: directory,
      taskID: task.taskID,
    });
    try {
      const sent = await this.client.session
        .promptAsync({
          sessionID,
          directory,
          parts: [{ type: "text", text: request.prompt }],
          ...(task.model ? { model: task.model } : {}),
          ...(task.agent ? { agent: task.agent } : {}),
        })
        .catch((err: unknown) => ({ error: err, response: undefined }));
      if (sent.error) {
        throw new StationError(
          ErrorCodes.AgentUnavailable,
          `opencode did not accept the prompt: ${describe(sent.error)}`,
          {
            retryable: true,
          },
        );
      }
      const interval = this.o.pollInterval;
      for (;;) {
        // One abort listener per wait, removed when the wait ends (a poll a second must not pile up listeners).
        await new Promise<void>((resolve) => {
          const done = () => {
            clearTimeout(timer);
            signal.removeEventListener("abort", done);
            resolve();
          };
          const timer = setTimeout(done, interval);
          wake = done;
          if (signal.aborted) done();
          else signal.addEventListener("abort", done, { once: true });
        });
        if (signal.aborted) {
          // Before OpenCode stops the running calls (which lets go of their holds): calls still
          // waiting for the workspace would otherwise run after the task was cancelled.
          this.exclusion.abandonWaiting(sessionID);
          await this.abort(sessionID, directory);
          throw signal.reason;
        }
        const done = await this.finishedTurn(sessionID, directory, known, turn.mapper.errors);
        if (done) {
          await turn.mapper.settle();
          return summarizeTurn(done, turn.mapper.toolCalls);
        }
      }
    } finally {
      this.turns.delete(sessionID);
      this.scopes.delete(sessionID);
      await this.endHolds(sessionID, request.logger);
      for (const span of turn.tools.values()) span.end();
    }
  }

  /**
   * After the turn (and any abort) is over, ends what its calls and its subagents' still hold:
   * requests still waiting are abandoned, and a bash call still holding its workspace (one an
   * abort cut short, which OpenCode reports over before its command is dead) has whatever still
   * runs of its sandbox killed first. A sandbox that will not die keeps its hold: the workspace
   * stays closed to other tool calls rather than open to a command that can swap its links.
   */
  private async endHolds(owner: string, log: Logger): Promise<void> {
    this.exclusion.abandonWaiting(owner);
    for (const key of this.exclusion.held(owner, "exclusive")) {
      const { sessionID, callID } = parseHoldKey(key);
      try {
        const killed = await killCallProcesses(callMarker(sessionID, callID));
        if (killed > 0)
          log.warn({ callID, killed }, "killed the sandbox of a bash call OpenCode left running");
        this.exclusion.release(key);
      } catch (err) {
        log.error({ err, callID }, "a bash call's sandbox would not die; its workspace stays held");
      }
    }
    for (const key of this.exclusion.held(owner, "shared")) this.exclusion.release(key);
  }

  private async messages(sessionID: string, directory: string): Promise<MessageWithParts[]> {
    const res = await this.client.session
      .messages({ sessionID, directory })
      .catch((err: unknown) => ({ data: undefined, error: err }));
    if (!res.data) {
      throw new StationError(
        ErrorCodes.AgentUnavailable,
        `opencode messages of ${sessionID}: ${describe(res.error)}`,
        {
          retryable: true,
        },
      );
    }
    return res.data;
  }

  /**
   * The turn's messages when the turn is over (session idle and a final assistant message), else
   * undefined.
   *
   * @throws StationError (AGENT_ERROR, not retryable) when the session is idle without an answer
   * after OpenCode reported `errors` for the turn: it failed before any model step (e.g. a model or
   * agent that vanished after the catalogue check) and no answer will come.
   */
  private async finishedTurn(
    sessionID: string,
    directory: string,
    known: ReadonlySet<string>,
    errors: readonly string[],
  ): Promise<MessageWithParts[] | undefined> {
    const status = await this.client.session.status({ directory }).catch(() => undefined);
    const state = (status?.data as Record<string, { type?: string }> | undefined)?.[sessionID]?.type;
    if (state === "busy" || state === "retry") return undefined;
    if (!status?.data && this.server && !this.connected) {
      throw new StationError(ErrorCodes.AgentUnavailable, "lost the connection to opencode during the turn", {
        retryable: true,
      });
    }
    const fresh = (await this.messages(sessionID, directory)).filter((m) => !known.has(m.info.id));
    const user = fresh.find((m) => m.info.role === "user");
    const replies = user
      ? fresh.filter((m) => m.info.role === "assistant" && m.info.parentID === user.info.id)
      : [];
    const last = replies.at(-1);
    if (!last && errors.length > 0) {
      throw new StationError(ErrorCodes.AgentError, `opencode: ${errors[0]}`, { retryable: false });
    }
    if (!user || !last) return undefined;
    if (last.info.error) return replies;
    if (!last.info.time?.completed) return undefined;
    if (last.info.finish === "tool-calls") {
      // OpenCode ends the turn after tool calls when a permission was rejected without feedback
      // (rejecting one prompt rejects every other pending one of the session): idle before and
      // after reading the messages means no further step comes, and waiting would hang the task.
      if (!status?.data) return undefined;
      const again = await this.client.session.status({ directory }).catch(() => undefined);
      const now = (again?.data as Record<string, { type?: string }> | undefined)?.[sessionID]?.type;
      if (!again?.data || now === "busy" || now === "retry") return undefined;
    }
    return replies;
  }

  private async abort(sessionID: string, directory: string): Promise<void> {
    await this.client.session.abort({ sessionID, directory }).catch(() => undefined);
    const deadline = Date.now() + this.o.abortWait;
    while (Date.now() < deadline) {
      const status = await this.client.session.status({ directory }).catch(() => undefined);
      const state = (status?.data as Record<string, { type?: string }> | undefined)?.[sessionID]?.type;
      if (status?.data && state !== "busy" && state !== "retry") return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    this.logger.warn({ sessionID }, "opencode session still busy after abort");
  }

  /**
   * Exports the session so that another worker can restore the conversation: the same JSON as
   * `opencode export <id>` (session info and every message with its parts), read over the HTTP
   * API instead of starting an opencode process.
   */
  async afterTask(request: {
    task: ResolvedTask;
    org?: string | undefined;
    session: OpenedSession;
    directory: string;
  }): Promise<{ exportKey?: string } | void> {
    const store = this.runtime?.objectStore(request.org);
    if (!store || !this.server) return;
    const sessionID = request.session.opencodeID;
    try {
      const info = await this.client.session.get({ sessionID, directory: request.directory });
      if (!info.data) throw new Error(`session ${sessionID}: ${describe(info.error)}`);
      const messages = await this.messages(sessionID, request.directory);
      const json = JSON.stringify({
        info: info.data,
        messages: messages.map((m) => ({ info: m.info, parts: m.parts })),
      });
      const key = sessionExportKey(request.task.session.name);
      await store.putBlob({ name: key }, Buffer.from(json));
      return { exportKey: key };
    } catch (err) {
      this.logger.warn(
        { err: String(err) },
        "could not export the opencode session; it can only be reused on this worker",
      );
      return;
    }
  }

  private async restore(
    org: string | undefined,
    opencodeID: string,
    exportKey: string,
    log: Logger,
  ): Promise<boolean> {
    const store = this.runtime?.objectStore(org);
    if (!store || !this.server) return false;
    const dir = await mkdtemp(join(tmpdir(), "station-import-"));
    try {
      const data = await store.getBlob(exportKey);
      if (!data) return false;
      const file = join(dir, `${opencodeID}.json`);
      await writeFile(file, data);
      await run(this.server.binary, ["import", file], { env: this.server.processEnv, timeout: 60_000 });
      log.info({ opencodeID }, "restored the opencode session from its export");
      return true;
    } catch (err) {
      log.warn({ err: String(err) }, "could not restore the opencode session; starting a new one");
      return false;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async close(): Promise<void> {
    this.exclusion.close();
    this.stopEvents.abort();
    await this.eventLoop?.catch(() => undefined);
    await this.server?.stop();
    await this.bridge.stop();
    await this.proxy?.stop();
    if (this.runDir) await rm(this.runDir, { recursive: true, force: true });
  }
}

/** An OpenCode or HTTP error for a message: its own message without a stack trace, and short. */
function describe(err: unknown): string {
  if (err instanceof Error) return withoutStack(err.message).message;
  if (err && typeof err === "object") {
    const e = err as { name?: unknown; message?: unknown; data?: { message?: unknown } };
    const message = [e.data?.message, e.message].find((m): m is string => typeof m === "string");
    if (message === undefined) return JSON.stringify(err).slice(0, 300);
    const text = withoutStack(message).message.slice(0, 300);
    return typeof e.name === "string" ? `${e.name}: ${text}` : text;
  }
  return String(err);
}
