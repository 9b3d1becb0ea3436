import { once } from "node:events";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

import { lastUserText, resolveToolArguments, scenarioName, selectScenario } from "./scenario.js";
import type {
  ChatCompletionRequest,
  Scenario,
  ScenarioStep,
  ScriptedError,
  ScriptedUsage,
} from "./scenario.js";

/** Options of {@link ScriptedModelServer.start}. */
export interface ScriptedModelServerOptions {
  /** Scenarios in match order (the first whose rule accepts the last user message wins). @default [] */
  scenarios?: readonly Scenario[];
  /** TCP port; 0 picks a free one. @default 0 */
  port?: number;
  /** Interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** Model ids listed by `GET /v1/models`. Any model id is answered regardless. @default ["fake-model"] */
  models?: readonly string[];
}

/**
 * How a call ended: `answered` once the whole answer (or error) was sent, `disconnected` when the
 * client went away first (a cancelled turn), undefined while in flight.
 */
export type CallOutcome = "answered" | "disconnected" | undefined;

/** A model call answered by a scenario step. */
export interface ScenarioCall {
  scenario: string;
  step: number;
  body: ChatCompletionRequest;
  outcome: CallOutcome;
}

/**
 * Why a call got the generic short answer: it offered no tools (OpenCode's title generation), no
 * scenario matched, or the matched scenario has no step left.
 */
export type FallbackReason = "no-tools" | "unmatched" | "script-ended";

/** A model call answered with the generic short text. */
export interface FallbackCall {
  reason: FallbackReason;
  /** The scenario whose steps ran out, for `script-ended`. */
  scenario?: string;
  body: ChatCompletionRequest;
  outcome: CallOutcome;
}

const DEFAULT_USAGE: ScriptedUsage = { prompt_tokens: 10, completion_tokens: 5 };
const FALLBACK_USAGE: ScriptedUsage = { prompt_tokens: 5, completion_tokens: 1 };
const TITLE_MAX_LENGTH = 50;
const TEXT_CHUNKS = 3;

/** A resolved answer: what to stream or return for one call. */
interface Answer {
  text: string;
  reasoning: string;
  toolCalls: { id: string; name: string; arguments: string }[];
  usage: ScriptedUsage;
  delayMs: number;
  chunkDelayMs: number;
  error?: ScriptedError | undefined;
  /** The record of this call, to set its outcome on. */
  record: { outcome: CallOutcome };
}

/**
 * An OpenAI-compatible chat completions server that answers from scripted {@link Scenario}s, for
 * tests and the demo: point OpenCode's `@ai-sdk/openai-compatible` provider at {@link url}.
 *
 * Serves `POST /v1/chat/completions` (SSE when `stream` is true, JSON otherwise) and `GET /v1/models`.
 * It keeps no per-conversation state: each request's step is derived from its `messages`.
 */
export class ScriptedModelServer {
  /** Base URL to configure as the provider's `baseURL`, e.g. `http://127.0.0.1:41234/v1`. */
  readonly url: string;
  /** Every chat request body received, in arrival order. */
  readonly requests: ChatCompletionRequest[] = [];
  /** The calls that played a scenario step, in arrival order. */
  readonly scenarioCalls: ScenarioCall[] = [];
  /** The calls answered with the generic short text (title generation, unmatched, script ended). */
  readonly fallbackCalls: FallbackCall[] = [];

  readonly #server: Server;
  readonly #models: readonly string[];
  readonly #stopping = new AbortController();
  #scenarios: Scenario[];
  #stopped: Promise<void> | undefined;

  private constructor(server: Server, url: string, options: ScriptedModelServerOptions) {
    this.#server = server;
    this.url = url;
    this.#scenarios = [...(options.scenarios ?? [])];
    this.#models = options.models ?? ["fake-model"];
  }

  /** Starts a server listening on `options.port` (a free port by default). */
  static async start(options: ScriptedModelServerOptions = {}): Promise<ScriptedModelServer> {
    const host = options.host ?? "127.0.0.1";
    const server = createServer();
    server.listen(options.port ?? 0, host);
    await once(server, "listening");
    const { port } = server.address() as AddressInfo;
    const hostInUrl = host.includes(":") ? `[${host}]` : host;
    const instance = new ScriptedModelServer(server, `http://${hostInUrl}:${port}/v1`, options);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      instance.#handle(req, res).catch((error: unknown) => {
        // The handler answers its own errors; this catches only failures to write the answer.
        if (!res.headersSent) sendJson(res, 500, errorBody(500, describe(error)));
        else res.destroy();
      });
    });
    return instance;
  }

  /** The scenarios in match order. */
  get scenarios(): readonly Scenario[] {
    return this.#scenarios;
  }

  /** Replaces all scenarios. */
  setScenarios(scenarios: readonly Scenario[]): void {
    this.#scenarios = [...scenarios];
  }

  /** Appends a scenario; earlier scenarios win when several match. */
  addScenario(scenario: Scenario): void {
    this.#scenarios.push(scenario);
  }

  /** Stops listening, ends in-flight answers and closes all connections. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped ??= new Promise<void>((resolve, reject) => {
      this.#stopping.abort();
      this.#server.close((error) => (error ? reject(error) : resolve()));
      this.#server.closeAllConnections();
    });
    return this.#stopped;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://localhost").pathname.replace(/\/+$/, "");
    if (req.method === "GET" && path === "/v1/models") {
      sendJson(res, 200, {
        object: "list",
        data: this.#models.map((id) => ({ id, object: "model", created: 0, owned_by: "scripted" })),
      });
      return;
    }
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      sendJson(res, 404, errorBody(404, `no route ${req.method} ${path}: use POST /v1/chat/completions`));
      return;
    }

    let body: ChatCompletionRequest;
    try {
      body = parseRequest(await readBody(req));
    } catch (error) {
      sendJson(res, 400, errorBody(400, describe(error)));
      return;
    }
    this.requests.push(body);

    let answer: Answer;
    try {
      answer = this.#answer(body);
    } catch (error) {
      // A broken script answers 400, not 500: OpenCode retries 5xx, and a script bug will not heal.
      sendJson(res, 400, errorBody(400, `scripted model server: ${describe(error)}`));
      return;
    }

    const abort = AbortSignal.any([this.#stopping.signal, closedSignal(res)]);
    const finished = await this.#send(res, body, answer, abort);
    answer.record.outcome = finished ? "answered" : "disconnected";
  }

  /** Sends the answer; false when the client disconnected (or the server stopped) first. */
  async #send(
    res: ServerResponse,
    body: ChatCompletionRequest,
    answer: Answer,
    abort: AbortSignal,
  ): Promise<boolean> {
    if (!(await pause(answer.delayMs, abort))) return false;
    if (answer.error) {
      const { status, message, retryAfterMs } = answer.error;
      const headers: Record<string, string> =
        retryAfterMs === undefined
          ? {}
          : { "retry-after-ms": String(retryAfterMs), "retry-after": String(Math.ceil(retryAfterMs / 1000)) };
      sendJson(res, status, errorBody(status, message, answer.error), headers);
      return true;
    }
    if (body.stream === true) return streamAnswer(res, body.model, answer, abort);
    sendJson(res, 200, completion(body.model, answer));
    return true;
  }

  /** Picks the step for a request, records the call and resolves the step into an answer. */
  #answer(body: ChatCompletionRequest): Answer {
    const fallback = (text: string, call: Omit<FallbackCall, "body" | "outcome">): Answer => {
      const record: FallbackCall = { ...call, body, outcome: undefined };
      this.fallbackCalls.push(record);
      return {
        text,
        reasoning: "",
        toolCalls: [],
        usage: FALLBACK_USAGE,
        delayMs: 0,
        chunkDelayMs: 0,
        record,
      };
    };
    if (!body.tools || body.tools.length === 0) {
      return fallback(titleFor(lastUserText(body.messages)), { reason: "no-tools" });
    }
    const selection = selectScenario(this.#scenarios, body.messages);
    if (!selection) return fallback("ok", { reason: "unmatched" });
    const name = scenarioName(selection.scenario);
    const step: ScenarioStep | undefined = selection.scenario.steps[selection.step];
    if (!step) return fallback("ok", { reason: "script-ended", scenario: name });
    const toolCalls = (step.toolCalls ?? []).map((call, index) => {
      let args: Record<string, unknown>;
      try {
        args = resolveToolArguments(call.arguments, selection.context);
      } catch (error) {
        throw new Error(`scenario "${name}" step ${selection.step} tool ${call.name}: ${describe(error)}`, {
          cause: error,
        });
      }
      return {
        id: call.id ?? `call_${selection.step}_${index}`,
        name: call.name,
        arguments: JSON.stringify(args),
      };
    });
    const record: ScenarioCall = { scenario: name, step: selection.step, body, outcome: undefined };
    this.scenarioCalls.push(record);
    return {
      text: step.text ?? "",
      reasoning: step.reasoning ?? "",
      toolCalls,
      usage: step.usage ?? DEFAULT_USAGE,
      delayMs: step.delayMs ?? 0,
      chunkDelayMs: step.chunkDelayMs ?? 0,
      error: step.error,
      record,
    };
  }
}

/** A title-like answer for tool-less calls: the first line of the user's message, shortened. */
function titleFor(userText: string | undefined): string {
  const line = userText?.trim().split("\n", 1)[0]?.trim() ?? "";
  if (line === "") return "Scripted session";
  return line.length > TITLE_MAX_LENGTH ? `${line.slice(0, TITLE_MAX_LENGTH - 1)}…` : line;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

function parseRequest(raw: string): ChatCompletionRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new Error("request body is not JSON: send a chat completion request");
  }
  if (
    typeof parsed !== "object" ||
    parsed === null ||
    !Array.isArray((parsed as { messages?: unknown }).messages)
  ) {
    throw new Error("request body has no messages array: send a chat completion request");
  }
  return parsed as ChatCompletionRequest;
}

/** An AbortSignal that fires when the response's connection closes before the answer is complete. */
function closedSignal(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once("close", () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** Waits `ms`; false when aborted first. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  if (ms <= 0) return true;
  try {
    await sleep(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

function usageBody(usage: ScriptedUsage): Record<string, unknown> {
  return {
    prompt_tokens: usage.prompt_tokens,
    completion_tokens: usage.completion_tokens,
    total_tokens: usage.prompt_tokens + usage.completion_tokens,
    prompt_tokens_details: { cached_tokens: usage.cached_tokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: usage.reasoning_tokens ?? 0 },
  };
}

function finishReason(answer: Answer): "tool_calls" | "stop" {
  return answer.toolCalls.length > 0 ? "tool_calls" : "stop";
}

function completionId(): string {
  return `chatcmpl-${Math.random().toString(36).slice(2, 14)}`;
}

/** The non-streaming answer: one `chat.completion` object. */
function completion(model: string, answer: Answer): Record<string, unknown> {
  return {
    id: completionId(),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: answer.text === "" ? null : answer.text,
          ...(answer.reasoning !== "" && { reasoning_content: answer.reasoning }),
          ...(answer.toolCalls.length > 0 && {
            tool_calls: answer.toolCalls.map((call) => ({
              id: call.id,
              type: "function",
              function: { name: call.name, arguments: call.arguments },
            })),
          }),
        },
        finish_reason: finishReason(answer),
      },
    ],
    usage: usageBody(answer.usage),
  };
}

/** The deltas of a streamed answer: reasoning, then text, then tool calls, each in a few pieces. */
function* deltas(answer: Answer): Generator<Record<string, unknown>> {
  for (const piece of splitWords(answer.reasoning, TEXT_CHUNKS)) yield { reasoning_content: piece };
  for (const piece of splitWords(answer.text, TEXT_CHUNKS)) yield { content: piece };
  for (const [index, call] of answer.toolCalls.entries()) {
    yield {
      tool_calls: [{ index, id: call.id, type: "function", function: { name: call.name, arguments: "" } }],
    };
    for (const piece of splitHalves(call.arguments)) {
      yield { tool_calls: [{ index, function: { arguments: piece } }] };
    }
  }
}

async function streamAnswer(
  res: ServerResponse,
  model: string,
  answer: Answer,
  signal: AbortSignal,
): Promise<boolean> {
  const id = completionId();
  const created = Math.floor(Date.now() / 1000);
  const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}): string =>
    `data: ${JSON.stringify({
      id,
      object: "chat.completion.chunk",
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: null }],
      ...extra,
    })}\n\n`;

  res.writeHead(200, {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
  });
  let first = true;
  for (const delta of deltas(answer)) {
    if (!first && !(await pause(answer.chunkDelayMs, signal))) return false;
    res.write(chunk(first ? { role: "assistant", ...delta } : delta));
    first = false;
  }
  if (!first && !(await pause(answer.chunkDelayMs, signal))) return false;
  const final = {
    id,
    object: "chat.completion.chunk",
    created,
    model,
    choices: [{ index: 0, delta: first ? { role: "assistant" } : {}, finish_reason: finishReason(answer) }],
    usage: usageBody(answer.usage),
  };
  res.write(`data: ${JSON.stringify(final)}\n\n`);
  res.end("data: [DONE]\n\n");
  return true;
}

/** Splits text into at most `parts` pieces at word boundaries, keeping all whitespace. */
function splitWords(text: string, parts: number): string[] {
  if (text === "") return [];
  const words = text.match(/\s*\S+\s*/g) ?? [text];
  const size = Math.ceil(words.length / parts);
  const pieces: string[] = [];
  for (let i = 0; i < words.length; i += size) pieces.push(words.slice(i, i + size).join(""));
  return pieces;
}

/** Splits a string in two (tool arguments arrive in pieces from real models too). */
function splitHalves(text: string): string[] {
  if (text.length < 2) return [text];
  const middle = Math.floor(text.length / 2);
  return [text.slice(0, middle), text.slice(middle)];
}

const ERROR_DEFAULTS: Record<number, { type: string; code: string | null }> = {
  400: { type: "invalid_request_error", code: null },
  401: { type: "invalid_request_error", code: "invalid_api_key" },
  403: { type: "invalid_request_error", code: "unsupported_country_region_territory" },
  404: { type: "invalid_request_error", code: "model_not_found" },
  429: { type: "requests", code: "rate_limit_exceeded" },
};

/** OpenAI's error JSON: `{error: {message, type, param, code}}`. */
function errorBody(
  status: number,
  message: string,
  override: Pick<ScriptedError, "type" | "code"> = {},
): Record<string, unknown> {
  const defaults = ERROR_DEFAULTS[status] ?? {
    type: status >= 500 ? "server_error" : "invalid_request_error",
    code: null,
  };
  return {
    error: {
      message,
      type: override.type ?? defaults.type,
      param: null,
      code: override.code === undefined ? defaults.code : override.code,
    },
  };
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
