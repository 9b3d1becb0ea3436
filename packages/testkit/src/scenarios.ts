/**
 * Ready-made scenarios for the scripted model server, written against OpenCode's built-in tools
 * (opencode-ai 1.18.33): `write {filePath, content}`, `edit {filePath, oldString, newString}`,
 * `read {filePath}`, `bash {command, workdir?}`; file paths must be absolute.
 */
import { isAbsolute, join } from "node:path";

import type { Scenario, ScenarioContext, ScriptedUsage, ToolArguments } from "./scenario.js";

/** Options every builder takes. */
export interface ScenarioBaseOptions {
  /** Substring of, or pattern for, the user message that selects the scenario. */
  match?: string | RegExp;
  /** Scenario name. @default the builder's name */
  name?: string;
}

/** The workspace directory of a request, or an error saying why there is none. */
export function requireWorkdir(ctx: ScenarioContext): string {
  if (ctx.workdir === undefined) {
    throw new Error(
      'no "Working directory: <dir>" line in the system prompt: this scenario needs OpenCode as the client, or an absolute path',
    );
  }
  return ctx.workdir;
}

/** Resolves a path against the request's workspace directory unless it is absolute. */
export function inWorkdir(ctx: ScenarioContext, path: string): string {
  return isAbsolute(path) ? path : join(requireWorkdir(ctx), path);
}

/** Options of {@link createFileScenario}. */
export interface CreateFileScenarioOptions extends ScenarioBaseOptions {
  /** File to write, relative to the workspace or absolute. @default "hello.txt" */
  file?: string;
  /** File content. @default "hello\n" */
  content?: string;
  /** Usage of the write step. @default `{prompt_tokens: 120, completion_tokens: 30}` */
  usage?: ScriptedUsage;
  /** Usage of the closing text step. @default `{prompt_tokens: 150, completion_tokens: 10}` */
  finalUsage?: ScriptedUsage;
  /** Closing text. @default "Created <file>." */
  text?: string;
}

/** Writes one file with the `write` tool, then answers with a short text. */
export function createFileScenario(options: CreateFileScenarioOptions = {}): Scenario {
  const file = options.file ?? "hello.txt";
  const content = options.content ?? "hello\n";
  return {
    name: options.name ?? "create-file",
    match: options.match ?? "create hello",
    steps: [
      {
        toolCalls: [{ name: "write", arguments: (ctx) => ({ filePath: inWorkdir(ctx, file), content }) }],
        usage: options.usage ?? { prompt_tokens: 120, completion_tokens: 30 },
      },
      {
        text: options.text ?? `Created ${file}.`,
        usage: options.finalUsage ?? { prompt_tokens: 150, completion_tokens: 10 },
      },
    ],
  };
}

/** Options of {@link multiStepScenario}. */
export interface MultiStepScenarioOptions extends ScenarioBaseOptions {
  /** File to create, edit and read, relative to the workspace or absolute. @default "notes.txt" */
  file?: string;
}

/**
 * Five model calls with reasoning: `write` a file, `edit` it, `read` it, run `cat` on it with `bash`,
 * then a closing text. The file ends up containing `"hello, edited world\n"`.
 */
export function multiStepScenario(options: MultiStepScenarioOptions = {}): Scenario {
  const file = options.file ?? "notes.txt";
  return {
    name: options.name ?? "multi-step",
    match: options.match ?? "multi step",
    steps: [
      {
        reasoning: "The user wants a notes file. I will create it first.",
        toolCalls: [
          {
            name: "write",
            arguments: (ctx) => ({ filePath: inWorkdir(ctx, file), content: "hello world\n" }),
          },
        ],
        usage: { prompt_tokens: 100, completion_tokens: 20, reasoning_tokens: 8 },
      },
      {
        reasoning: "Now change the greeting.",
        toolCalls: [
          {
            name: "edit",
            arguments: (ctx) => ({
              filePath: inWorkdir(ctx, file),
              oldString: "hello",
              newString: "hello, edited",
            }),
          },
        ],
        usage: { prompt_tokens: 140, completion_tokens: 25, reasoning_tokens: 5, cached_tokens: 100 },
      },
      {
        reasoning: "Check the result.",
        toolCalls: [{ name: "read", arguments: (ctx) => ({ filePath: inWorkdir(ctx, file) }) }],
        usage: { prompt_tokens: 180, completion_tokens: 15, reasoning_tokens: 3, cached_tokens: 140 },
      },
      {
        toolCalls: [
          { name: "bash", arguments: (ctx) => ({ command: `cat ${JSON.stringify(inWorkdir(ctx, file))}` }) },
        ],
        usage: { prompt_tokens: 220, completion_tokens: 12, cached_tokens: 180 },
      },
      {
        reasoning: "All done.",
        text: `I created, edited and checked ${file}.`,
        usage: { prompt_tokens: 260, completion_tokens: 18, reasoning_tokens: 2, cached_tokens: 220 },
      },
    ],
  };
}

/** Options of {@link slowScenario}. */
export interface SlowScenarioOptions extends ScenarioBaseOptions {
  /** Delay before the answer starts; ends early when the client disconnects. @default 60_000 */
  delayMs?: number;
  /** Delay between streamed chunks. @default 0 */
  chunkDelayMs?: number;
  /** The answer once the delay is over. @default "Finally done." */
  text?: string;
}

/** A model call that takes long to answer, for cancel and timeout tests. */
export function slowScenario(options: SlowScenarioOptions = {}): Scenario {
  return {
    name: options.name ?? "slow",
    match: options.match ?? "be slow",
    steps: [
      {
        delayMs: options.delayMs ?? 60_000,
        chunkDelayMs: options.chunkDelayMs ?? 0,
        text: options.text ?? "Finally done.",
      },
    ],
  };
}

/** Options of {@link providerErrorScenario}. */
export interface ProviderErrorScenarioOptions extends ScenarioBaseOptions {
  /**
   * HTTP status. OpenCode gives up at once on most 4xx, and retries 429 and 5xx 5 times with
   * backoff (`session.status` type `retry`) before failing. @default 401
   */
  status?: number;
  /** Error message. @default a message naming the status */
  message?: string;
  /**
   * `retry-after-ms` header: how long OpenCode waits between its retries of a 429 or 5xx.
   * @default 10 for 429 and 5xx (so the turn fails within a second), no header otherwise
   */
  retryAfterMs?: number;
}

/** The provider answers the first model call with an HTTP error and OpenAI error JSON. */
export function providerErrorScenario(options: ProviderErrorScenarioOptions = {}): Scenario {
  const status = options.status ?? 401;
  return {
    name: options.name ?? `provider-error-${status}`,
    match: options.match ?? "provider error",
    steps: [
      {
        error: {
          status,
          message: options.message ?? `scripted provider error ${status}`,
          retryAfterMs: options.retryAfterMs ?? (status === 429 || status >= 500 ? 10 : undefined),
        },
      },
    ],
  };
}

/** Options of {@link permissionAskScenario}. */
export interface PermissionAskScenarioOptions extends ScenarioBaseOptions {
  /**
   * An absolute path OUTSIDE the workspace to `read`; OpenCode's default `external_directory`
   * permission asks before reading it.
   */
  path: string;
  /** Closing text after the read ran or was rejected. @default "Read it." */
  text?: string;
}

/** Reads a file outside the workspace, which makes OpenCode ask for the `external_directory` permission. */
export function permissionAskScenario(options: PermissionAskScenarioOptions): Scenario {
  return {
    name: options.name ?? "permission-ask",
    match: options.match ?? "read outside",
    steps: [
      { toolCalls: [{ name: "read", arguments: { filePath: options.path } }] },
      { text: options.text ?? "Read it." },
    ],
  };
}

/** Options of {@link toolCallScenario}. */
export interface ToolCallScenarioOptions extends ScenarioBaseOptions {
  /** Tool name, e.g. a plugin tool such as `station_kv_set`. */
  tool: string;
  /** Tool arguments, fixed or computed from the request. */
  arguments: ToolArguments;
  /** Closing text after the tool ran. @default "Called <tool>." */
  text?: string;
}

/** Calls one tool by name (a plugin tool, say) with given arguments, then answers with a short text. */
export function toolCallScenario(options: ToolCallScenarioOptions): Scenario {
  return {
    name: options.name ?? `tool-${options.tool}`,
    match: options.match ?? `call ${options.tool}`,
    steps: [
      { toolCalls: [{ name: options.tool, arguments: options.arguments }] },
      { text: options.text ?? `Called ${options.tool}.` },
    ],
  };
}

/** The demo's scenario: any prompt writes `hello.txt` in the workspace, lists the files, and says so. */
export function demoScenario(): Scenario {
  return {
    name: "demo",
    match: /[\s\S]*/,
    steps: [
      {
        reasoning: "I will create hello.txt in the workspace.",
        toolCalls: [
          {
            name: "write",
            arguments: (ctx) => ({
              filePath: inWorkdir(ctx, "hello.txt"),
              content: "Hello from the scripted model!\n",
            }),
          },
        ],
        usage: { prompt_tokens: 1200, completion_tokens: 40, reasoning_tokens: 10 },
        chunkDelayMs: 50,
      },
      {
        toolCalls: [{ name: "bash", arguments: { command: "ls -la" } }],
        usage: { prompt_tokens: 1300, completion_tokens: 20, cached_tokens: 1200 },
        chunkDelayMs: 50,
      },
      {
        text: "I wrote hello.txt and listed the workspace.",
        usage: { prompt_tokens: 1400, completion_tokens: 15, cached_tokens: 1300 },
        chunkDelayMs: 50,
      },
    ],
  };
}
