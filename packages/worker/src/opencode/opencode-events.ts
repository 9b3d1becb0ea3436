import { MAX_ERROR_BYTES, cutUtf8 } from "@station-coding/protocol";
import type { ArtifactRef, EventDraft } from "@station-coding/protocol";
import type { Logger } from "pino";

/** The subset of an OpenCode event this module reads (`{type, properties}`). */
export interface OpenCodeEvent {
  type: string;
  properties: Record<string, unknown>;
}

interface ToolState {
  status: "pending" | "running" | "completed" | "error";
  input?: Record<string, unknown>;
  output?: string;
  error?: string;
  title?: string;
  metadata?: Record<string, unknown>;
  time?: { start?: number; end?: number };
}

interface PartLike {
  id: string;
  sessionID: string;
  messageID: string;
  type: string;
  text?: string;
  callID?: string;
  tool?: string;
  state?: ToolState;
}

/** Large tool outputs: the event keeps a head, the artifact keeps everything. */
export interface OutputSink {
  maxInline: number;
  store(name: string, data: Uint8Array): Promise<ArtifactRef>;
}

/**
 * Turns one OpenCode turn's event stream into station events, live: text and reasoning deltas
 * (by part id, since reasoning deltas also say `field: "text"`), tool start/end by call id, and
 * errors. Idempotent against repeated or late part updates.
 */
export class TurnEventMapper {
  private readonly partTypes = new Map<string, string>();
  private readonly emitted = new Map<string, number>();
  private readonly toolsStarted = new Set<string>();
  private readonly toolsEnded = new Set<string>();
  private readonly pendingWrites: Promise<void>[] = [];
  /** Role of each message seen; parts of a message whose role is not known yet wait for it. */
  private readonly roles = new Map<string, string>();
  private readonly waiting = new Map<string, OpenCodeEvent[]>();
  /** Messages of `session.error` events seen during the turn (without stack traces), except aborts. */
  readonly errors: string[] = [];

  constructor(
    private readonly emit: (event: EventDraft) => void,
    private readonly sink: OutputSink,
    private readonly ignoreMessages: ReadonlySet<string>,
    /** Where OpenCode's internal stack traces go: the worker's log, never an event. */
    private readonly logger?: Logger,
  ) {}

  /** Tool calls that started in this turn. */
  get toolCalls(): number {
    return this.toolsStarted.size;
  }

  /** Waits for artifacts of large outputs to be stored. */
  async settle(): Promise<void> {
    await Promise.all(this.pendingWrites);
  }

  /** Feeds one event of this turn's session. */
  handle(event: OpenCodeEvent): void {
    const p = event.properties;
    switch (event.type) {
      case "message.updated": {
        const info = p.info as { id?: string; role?: string } | undefined;
        if (!info?.id || !info.role || this.roles.has(info.id)) return;
        this.roles.set(info.id, info.role);
        const queued = this.waiting.get(info.id) ?? [];
        this.waiting.delete(info.id);
        for (const e of queued) this.handle(e);
        return;
      }
      case "message.part.updated": {
        const part = p.part as PartLike;
        if (!part?.messageID || !this.fromAssistant(part.messageID, event)) return;
        this.onPart(part);
        return;
      }
      case "message.part.delta": {
        const partID = String(p.partID);
        if (this.ignoreMessages.has(String(p.messageID))) return;
        if (!this.fromAssistant(String(p.messageID), event)) return;
        const type = this.partTypes.get(partID);
        if ((type === "text" || type === "reasoning") && p.field === "text" && typeof p.delta === "string") {
          this.emitted.set(partID, (this.emitted.get(partID) ?? 0) + p.delta.length);
          this.emit({ type: type === "text" ? "text" : "thinking", content: p.delta });
        }
        return;
      }
      case "session.error": {
        const error = p.error as { name?: string; data?: { message?: string } } | undefined;
        const raw = error?.data?.message ?? error?.name ?? "OpenCode session error";
        const { message, stack } = withoutStack(raw);
        if (stack) this.logger?.warn({ opencodeError: raw }, "opencode reported an internal error");
        // OpenCode follows a readable error with a dump of the same failure and its stack trace.
        if (stack && this.errors.length > 0) return;
        const content = cutUtf8(message || error?.name || "OpenCode session error", MAX_ERROR_BYTES);
        if (error?.name !== "MessageAbortedError") this.errors.push(content);
        this.emit({ type: "error", content });
        return;
      }
      default:
        return;
    }
  }

  /** Whether the event belongs to an assistant message; queues it while the role is unknown. */
  private fromAssistant(messageID: string, event: OpenCodeEvent): boolean {
    const role = this.roles.get(messageID);
    if (role === undefined) {
      const queue = this.waiting.get(messageID) ?? [];
      queue.push(event);
      this.waiting.set(messageID, queue);
      return false;
    }
    return role === "assistant";
  }

  private onPart(part: PartLike): void {
    if (!part?.id || this.ignoreMessages.has(part.messageID)) return;
    this.partTypes.set(part.id, part.type);
    if ((part.type === "text" || part.type === "reasoning") && typeof part.text === "string") {
      const done = this.emitted.get(part.id) ?? 0;
      if (part.text.length > done) {
        this.emitted.set(part.id, part.text.length);
        this.emit({ type: part.type === "text" ? "text" : "thinking", content: part.text.slice(done) });
      }
      return;
    }
    if (part.type === "tool" && part.callID && part.state) this.onTool(part, part.callID, part.state);
  }

  private onTool(part: PartLike, callID: string, state: ToolState): void {
    const name = part.tool ?? "unknown";
    if (state.status !== "pending" && !this.toolsStarted.has(callID)) {
      this.toolsStarted.add(callID);
      this.emit({ type: "tool_start", tool: { name, callID, args: state.input ?? {} } });
    }
    if ((state.status === "completed" || state.status === "error") && !this.toolsEnded.has(callID)) {
      this.toolsEnded.add(callID);
      const output = state.status === "completed" ? (state.output ?? "") : (state.error ?? "");
      const duration =
        state.time?.start !== undefined && state.time.end !== undefined
          ? Math.max(0, state.time.end - state.time.start)
          : undefined;
      const exit = state.metadata?.exit;
      const base = {
        name,
        callID,
        status: state.status,
        ...(duration !== undefined ? { duration } : {}),
        ...(typeof exit === "number" ? { exitCode: exit } : {}),
        ...(state.title ? { title: state.title } : {}),
        ...(state.status === "error" ? { error: output } : {}),
      };
      if (Buffer.byteLength(output) <= this.sink.maxInline) {
        this.emit({ type: "tool_end", tool: { ...base, output } });
        return;
      }
      // Keep the order of events: store the full output first, then emit the truncated end.
      const head = Buffer.from(output).subarray(0, this.sink.maxInline).toString();
      this.pendingWrites.push(
        this.sink.store(`tool-${callID.replace(/[^A-Za-z0-9_-]/g, "_")}.txt`, Buffer.from(output)).then(
          (artifact) =>
            this.emit({ type: "tool_end", tool: { ...base, output: head, truncated: true, artifact } }),
          () => this.emit({ type: "tool_end", tool: { ...base, output: head, truncated: true } }),
        ),
      );
    }
  }
}

/**
 * OpenCode's error text without its stack trace: the lines before the first `    at …` frame.
 * Stack traces name OpenCode's internals and belong in the worker's log, not in events or results.
 */
export function withoutStack(text: string): { message: string; stack: boolean } {
  const lines = text.split("\n");
  const frame = lines.findIndex((line) => /^\s+at\s/.test(line));
  if (frame < 0) return { message: text.trim(), stack: false };
  return { message: lines.slice(0, frame).join("\n").trim(), stack: true };
}
