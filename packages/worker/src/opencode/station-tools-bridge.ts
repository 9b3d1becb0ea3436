import { randomBytes, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ValidationError, validateName } from "@station-coding/protocol";
import type { Logger } from "pino";

/** What the bridge knows about the task running in an OpenCode session. */
export interface ToolScope {
  org: string | undefined;
  agentID: string;
  sessionName: string;
  opencodeID: string;
  workspace: string;
  taskID: string;
}

/** The worker-side implementation of the station tools, scoped to the calling task. */
export interface StationToolsHandler {
  kvGet(scope: ToolScope, key: string): Promise<unknown>;
  kvSet(scope: ToolScope, key: string, value: unknown, ttl?: number): Promise<void>;
  sessionInfo(scope: ToolScope): Promise<Record<string, unknown>>;
}

/** A tool call of the agent, as the station plugin reports it before OpenCode runs it. */
export interface GuardedCall {
  callID: string;
  /** The session that made the call: the task's own, or a subagent's below it. */
  sessionID: string;
  /** Aborts when the plugin stops waiting for the answer (its connection closed). */
  signal: AbortSignal;
}

/**
 * Decides a tool call of the agent before OpenCode runs it: the refusal the agent sees, or
 * undefined to let it run. It may wait (for the call's hold on its workspace) before answering.
 */
export type ToolGuard = (
  scope: ToolScope,
  tool: string,
  args: Record<string, unknown>,
  call: GuardedCall,
) => Promise<string | undefined>;

/** Ends what the guard holds for a tool call once OpenCode has run it (idempotent). */
export type ToolRelease = (sessionID: string, callID: string) => void;

/**
 * A loopback HTTP endpoint the station tools plugin inside OpenCode calls. It keeps NATS out of
 * the OpenCode process: the worker holds the only connection, and scopes every call by the task
 * that runs in the calling session (the plugin cannot pick another org or agent).
 *
 * The plugin also asks it, for the sandbox, which workspace a session's task owns (its bash commands
 * are confined to it), whether a tool call may run (`guard`, answered once the call holds its
 * workspace), and says when a call has run (`release`).
 */
export class StationToolsBridge {
  private server: Server | undefined;
  readonly token = randomBytes(24).toString("hex");
  private urlValue = "";

  constructor(
    private readonly scopeOf: (opencodeSessionID: string) => ToolScope | undefined,
    private readonly logger: Logger,
    private handler: StationToolsHandler | undefined = undefined,
    private readonly guard: ToolGuard | undefined = undefined,
    private readonly release: ToolRelease | undefined = undefined,
  ) {}

  /** URL the plugin calls. */
  get url(): string {
    return this.urlValue;
  }

  /** Sets the handler once the worker's stores are available. */
  setHandler(handler: StationToolsHandler): void {
    this.handler = handler;
  }

  /** Starts listening on 127.0.0.1 (random port). */
  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, "127.0.0.1", resolve));
    const { port } = this.server.address() as AddressInfo;
    this.urlValue = `http://127.0.0.1:${port}`;
  }

  /** Stops listening. */
  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    try {
      const auth = Buffer.from(req.headers.authorization ?? "");
      const expected = Buffer.from(`Bearer ${this.token}`);
      if (auth.length !== expected.length || !timingSafeEqual(auth, expected))
        return reply(401, { error: "unauthorized" });
      let body = "";
      for await (const chunk of req) {
        body += (chunk as Buffer).toString();
        if (body.length > 1_000_000) return reply(413, { error: "request too large" });
      }
      const call = JSON.parse(body) as { tool?: string; sessionID?: string; args?: Record<string, unknown> };
      const args = call.args ?? {};
      const text = (value: unknown) => (typeof value === "string" ? value : "");
      // Needs no task: a call may end after its task did (the release is then a no-op).
      if (call.tool === "station_sandbox_release") {
        this.release?.(text(args.session), text(args.callID));
        return reply(200, {});
      }
      const scope = call.sessionID ? this.scopeOf(call.sessionID) : undefined;
      if (!scope) return reply(404, { error: "no station task is running in this session" });
      switch (call.tool) {
        case "station_sandbox_scope":
          return reply(200, { workspace: scope.workspace });
        case "station_sandbox_check": {
          const gone = new AbortController();
          res.once("close", () => {
            if (!res.writableFinished) gone.abort();
          });
          const guarded: GuardedCall = {
            callID: text(args.callID),
            sessionID: text(args.session) || scope.opencodeID,
            signal: gone.signal,
          };
          const toolArgs = (args.args as Record<string, unknown> | undefined) ?? {};
          const refusal = this.guard
            ? await this.guard(scope, text(args.tool), toolArgs, guarded)
            : undefined;
          return reply(200, refusal !== undefined ? { refusal } : {});
        }
        default:
      }
      if (!this.handler) return reply(503, { error: "station tools are not ready" });
      switch (call.tool) {
        case "station_kv_get":
          return reply(200, { value: await this.handler.kvGet(scope, validateName("key", args.key)) });
        case "station_kv_set": {
          const ttl = typeof args.ttl === "number" && args.ttl > 0 ? args.ttl : undefined;
          await this.handler.kvSet(scope, validateName("key", args.key), args.value, ttl);
          return reply(200, { ok: true });
        }
        case "station_session_info":
          return reply(200, await this.handler.sessionInfo(scope));
        default:
          return reply(400, { error: `unknown tool ${JSON.stringify(call.tool)}` });
      }
    } catch (err) {
      if (err instanceof ValidationError) return reply(400, { error: err.message });
      this.logger.error({ err }, "station tool call failed");
      return reply(500, { error: err instanceof Error ? err.message : String(err) });
    }
  }
}
