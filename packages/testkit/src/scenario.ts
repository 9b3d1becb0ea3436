/**
 * Scenarios for the scripted model server: what the "model" answers, step by step, to a conversation
 * whose last user message matches a rule. Everything here is stateless: the step to play is derived
 * from the request alone, so one server can serve many concurrent conversations.
 */

/** One message of an OpenAI chat completion request, as far as the scripted server reads it. */
export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant" | "tool";
  /** A string, or content parts (`{type: "text", text}` among others), or null for tool-call-only turns. */
  content?: string | readonly ChatContentPart[] | null;
  tool_calls?: readonly {
    id: string;
    type: "function";
    function: { name: string; arguments: string };
  }[];
  tool_call_id?: string;
  [key: string]: unknown;
}

/** A content part of a chat message; only `text` parts are read. */
export interface ChatContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** The body of `POST /v1/chat/completions`, as far as the scripted server reads it. */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  tools?: readonly { type: "function"; function: { name: string; [key: string]: unknown } }[];
  [key: string]: unknown;
}

/** What a dynamic tool-call argument function gets to build its arguments from. */
export interface ScenarioContext {
  /** The conversation as sent by the client. */
  messages: readonly ChatMessage[];
  /**
   * The workspace directory, read from OpenCode's system prompt line `  Working directory: <dir>`
   * (inside its `<env>` block); undefined when the client sent no such line.
   */
  workdir?: string | undefined;
  /** Index of the step being played (0 for the first model call after the user message). */
  step: number;
}

/** Tool-call arguments, fixed or computed from the request (e.g. to put a path inside the workspace). */
export type ToolArguments = Record<string, unknown> | ((ctx: ScenarioContext) => Record<string, unknown>);

/** A tool call the scripted model makes. */
export interface ScriptedToolCall {
  /** Tool name as the client offered it, e.g. `write`, `bash`, or a plugin tool such as `station_kv_set`. */
  name: string;
  arguments: ToolArguments;
  /** Tool-call id; @default `call_<step>_<index>` */
  id?: string;
}

/** Token usage reported on the final chunk, in OpenAI's terms. */
export interface ScriptedUsage {
  /** All input tokens, cached ones included (OpenCode reports `input = prompt_tokens - cached_tokens`). */
  prompt_tokens: number;
  /** All output tokens, reasoning included (OpenCode reports `output = completion_tokens - reasoning_tokens`). */
  completion_tokens: number;
  /** Sent as `completion_tokens_details.reasoning_tokens`. @default 0 */
  reasoning_tokens?: number;
  /** Sent as `prompt_tokens_details.cached_tokens`. @default 0 */
  cached_tokens?: number;
}

/** An HTTP error answer instead of a completion. */
export interface ScriptedError {
  /** HTTP status, e.g. 401, 429, 500. */
  status: number;
  message: string;
  /** OpenAI error `type`. @default derived from the status (`authentication_error`, `rate_limit_error`, …) */
  type?: string;
  /** OpenAI error `code`. @default derived from the status (`invalid_api_key`, `rate_limit_exceeded`, …) */
  code?: string | null;
  /**
   * Sent as the `retry-after-ms` and `retry-after` headers. OpenCode retries 429, 5xx and
   * "retryable" errors up to 5 times, waiting this long when the header is present (else 2 s, 4 s,
   * 8 s, … up to 30 s), so a small value makes a 5xx scenario fail fast. @default no header
   */
  retryAfterMs?: number;
}

/** One model call's answer. */
export interface ScenarioStep {
  /** Assistant text, streamed as several `delta.content` chunks. */
  text?: string;
  /** Reasoning, streamed as several `delta.reasoning_content` chunks before the text. */
  reasoning?: string;
  /** Tool calls; when present the finish reason is `tool_calls`, else `stop`. */
  toolCalls?: readonly ScriptedToolCall[];
  /** Usage on the final chunk. @default `{prompt_tokens: 10, completion_tokens: 5}` */
  usage?: ScriptedUsage;
  /** Wait this long before answering; ends early when the client disconnects. @default 0 */
  delayMs?: number;
  /** Wait this long between streamed chunks. @default 0 */
  chunkDelayMs?: number;
  /** Answer with this HTTP error (OpenAI error JSON) instead of a completion. */
  error?: ScriptedError;
}

/** A scripted conversation: selected by the last user message, one step per model call. */
export interface Scenario {
  /** Name for assertions and logs. @default the match rule as a string */
  name?: string;
  /** Substring of, or pattern tested against, the text of the last user message. */
  match: string | RegExp;
  /** Steps in call order; step `i` answers the call that has `i` assistant turns after the last user message. */
  steps: readonly ScenarioStep[];
}

/** A scenario step chosen for a request. */
export interface ScenarioSelection {
  scenario: Scenario;
  /** Index into `scenario.steps`; may be past the end when the conversation outran the script. */
  step: number;
  context: ScenarioContext;
}

const WORKING_DIRECTORY_LINE = /^\s*Working directory: (.+?)\s*$/m;

/** The text of a message: a string content, or its text parts joined by newlines. */
export function messageText(message: ChatMessage): string {
  const { content } = message;
  if (typeof content === "string") return content;
  if (!content) return "";
  return content
    .filter((part) => part.type === "text" && typeof part.text === "string")
    .map((part) => part.text)
    .join("\n");
}

/** Index of the last `user` message, or -1. */
function lastUserIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === "user") return i;
  }
  return -1;
}

/** The text of the last user message, or undefined when there is none. */
export function lastUserText(messages: readonly ChatMessage[]): string | undefined {
  const index = lastUserIndex(messages);
  const message = messages[index];
  return message ? messageText(message) : undefined;
}

/** The number of assistant turns after the last user message: the step to play next. */
export function stepIndex(messages: readonly ChatMessage[]): number {
  return messages.slice(lastUserIndex(messages) + 1).filter((m) => m.role === "assistant").length;
}

/** The workspace directory OpenCode states in its system prompt (`Working directory: <dir>`). */
export function workdirFromMessages(messages: readonly ChatMessage[]): string | undefined {
  for (const message of messages) {
    if (message.role !== "system" && message.role !== "developer") continue;
    const found = WORKING_DIRECTORY_LINE.exec(messageText(message));
    if (found?.[1]) return found[1];
  }
  return undefined;
}

/** Whether a scenario's match rule accepts a user message text. */
export function scenarioMatches(scenario: Scenario, text: string): boolean {
  if (typeof scenario.match === "string") return text.includes(scenario.match);
  // A /g or /y pattern keeps lastIndex between calls; reset it so matching stays stateless.
  scenario.match.lastIndex = 0;
  return scenario.match.test(text);
}

/** The display name of a scenario. */
export function scenarioName(scenario: Scenario): string {
  return scenario.name ?? String(scenario.match);
}

/** The first scenario matching the last user message, with the step to play; undefined when none matches. */
export function selectScenario(
  scenarios: readonly Scenario[],
  messages: readonly ChatMessage[],
): ScenarioSelection | undefined {
  const text = lastUserText(messages);
  if (text === undefined) return undefined;
  const scenario = scenarios.find((s) => scenarioMatches(s, text));
  if (!scenario) return undefined;
  const step = stepIndex(messages);
  return { scenario, step, context: { messages, workdir: workdirFromMessages(messages), step } };
}

/** Resolves a tool call's arguments for a request. */
export function resolveToolArguments(args: ToolArguments, ctx: ScenarioContext): Record<string, unknown> {
  return typeof args === "function" ? args(ctx) : args;
}
