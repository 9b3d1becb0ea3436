// A deterministic agent driver for runtime tests: the prompt is a JSON script of steps.
// It is test support, not a product feature.
import { existsSync, writeFileSync } from "node:fs";
import { StationError, ErrorCodes } from "@station-coding/protocol";
import type {
  AgentDriver,
  OpenedSession,
  OpenSessionRequest,
  PromptRequest,
  PromptResult,
} from "@station-coding/worker";

/** One step of a script. */
export type Step =
  | { text: string }
  | { thinking: string }
  | { tool: { name: string; args?: Record<string, unknown>; output?: string } }
  /** Sleeps (abortably); with `onceFile`, only in the first run that finds no such file. */
  | { sleep: number; onceFile?: string }
  /** Sleeps without honouring the abort signal (a misbehaving driver). */
  | { stubborn: number }
  | { fail: { message: string; retryable: boolean }; times?: number }
  /** SIGKILLs the process running the worker (for crash tests in child processes). */
  | { crash: true; onceFile?: string }
  | { deltas: { count: number; text: string } }
  | { writeFile: { name: string; content: string } }
  /** Writes `count` small files named `<prefix><n>.txt`. */
  | { writeFiles: { count: number; prefix: string } };

/** A script: steps and the usage, cost and model to report (defaults: 10 in, 5 out, $0, "scripted"). */
export interface Script {
  steps: Step[];
  usage?: { input: number; output: number };
  /** USD. */
  cost?: number;
  model?: string;
  provider?: string;
}

/** Builds a prompt that runs `steps`. */
export function script(...steps: Step[]): string {
  return JSON.stringify({ steps } satisfies Script);
}

/** What the driver saw, for assertions. */
export interface DriverCall {
  taskID: string;
  session: string;
  opencodeID: string;
  startedAt: number;
  endedAt?: number;
}

/** The scripted driver. One instance may be shared by several in-process workers. */
export class ScriptedDriver implements AgentDriver {
  readonly calls: DriverCall[] = [];
  readonly failures = new Map<string, number>();
  private readonly known = new Map<string, number>();
  private nextID = 1;
  private active = new Map<string, number>();
  /** Times two prompts of one session ran at the same time. */
  overlaps = 0;

  async openSession(request: OpenSessionRequest): Promise<OpenedSession> {
    const previous = request.previous?.opencodeID;
    if (previous && this.known.has(previous)) return { opencodeID: previous, reused: true };
    const opencodeID = `ses_test${this.nextID++}`;
    this.known.set(opencodeID, 0);
    return { opencodeID, reused: false, ...(previous ? { replaced: true } : {}) };
  }

  async prompt(request: PromptRequest): Promise<PromptResult> {
    const { task, signal, emit } = request;
    const call: DriverCall = {
      taskID: task.taskID,
      session: task.session.name,
      opencodeID: request.session.opencodeID,
      startedAt: Date.now(),
    };
    this.calls.push(call);
    const running = (this.active.get(call.session) ?? 0) + 1;
    this.active.set(call.session, running);
    if (running > 1) this.overlaps += 1;
    try {
      return await this.play(request, parse(request.prompt), signal, emit);
    } finally {
      call.endedAt = Date.now();
      this.active.set(call.session, (this.active.get(call.session) ?? 1) - 1);
    }
  }

  private async play(
    request: PromptRequest,
    s: Script,
    signal: AbortSignal,
    emit: PromptRequest["emit"],
  ): Promise<PromptResult> {
    let text = "";
    let toolCalls = 0;
    for (const step of s.steps) {
      if (signal.aborted) throw signal.reason;
      if ("text" in step) {
        emit({ type: "text", content: step.text });
        text += step.text;
      } else if ("thinking" in step) {
        emit({ type: "thinking", content: step.thinking });
      } else if ("tool" in step) {
        toolCalls += 1;
        const callID = `call_${toolCalls}`;
        emit({ type: "tool_start", tool: { name: step.tool.name, callID, args: step.tool.args ?? {} } });
        emit({
          type: "tool_end",
          tool: {
            name: step.tool.name,
            callID,
            output: step.tool.output ?? "ok",
            duration: 1,
            status: "completed",
          },
        });
      } else if ("sleep" in step) {
        if (step.onceFile && existsSync(step.onceFile)) continue;
        if (step.onceFile) writeFileSync(step.onceFile, "slept");
        await sleep(step.sleep, signal);
      } else if ("stubborn" in step) {
        await new Promise((resolve) => setTimeout(resolve, step.stubborn));
      } else if ("fail" in step) {
        const seen = (this.failures.get(request.task.taskID) ?? 0) + 1;
        this.failures.set(request.task.taskID, seen);
        if (step.times === undefined || seen <= step.times) {
          throw new StationError(ErrorCodes.AgentError, step.fail.message, {
            retryable: step.fail.retryable,
          });
        }
      } else if ("crash" in step) {
        if (!step.onceFile || !existsSync(step.onceFile)) {
          if (step.onceFile) writeFileSync(step.onceFile, "crashed");
          process.kill(process.pid, "SIGKILL");
          await new Promise(() => undefined);
        }
      } else if ("deltas" in step) {
        for (let i = 0; i < step.deltas.count; i += 1) {
          emit({ type: "text", content: step.deltas.text });
          text += step.deltas.text;
        }
      } else if ("writeFile" in step) {
        const { writeFile } = await import("node:fs/promises");
        await writeFile(`${request.directory}/${step.writeFile.name}`, step.writeFile.content);
      } else if ("writeFiles" in step) {
        const { writeFile } = await import("node:fs/promises");
        for (let i = 0; i < step.writeFiles.count; i += 1) {
          await writeFile(`${request.directory}/${step.writeFiles.prefix}${i}.txt`, `${i}\n`);
        }
      }
    }
    const usage = s.usage ?? { input: 10, output: 5 };
    return {
      text,
      toolCalls,
      tokens: { input: usage.input, output: usage.output, reasoning: 0, cacheRead: 0, cacheWrite: 0 },
      cost: s.cost ?? 0,
      model: s.model ?? "scripted",
      provider: s.provider ?? "test",
      finishReason: "stop",
      steps: 1,
    };
  }
}

function parse(prompt: string): Script {
  if (prompt.trimStart().startsWith("{")) return JSON.parse(prompt) as Script;
  return { steps: [{ text: `echo: ${prompt}` }] };
}

/** Sleeps; rejects with the signal's reason on abort. The abort listener goes when the sleep ends. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason as Error);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
