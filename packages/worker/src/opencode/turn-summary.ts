import { ErrorCodes, StationError } from "@station-coding/protocol";
import type { TokenUsage } from "@station-coding/protocol";
import type { PromptResult } from "../shared/driver.js";
import { withoutStack } from "./opencode-events.js";

/** An OpenCode message's info, as far as the driver reads it. */
export interface MessageInfo {
  id: string;
  role: "user" | "assistant";
  parentID?: string;
  cost?: number;
  tokens?: { input: number; output: number; reasoning: number; cache: { read: number; write: number } };
  modelID?: string;
  providerID?: string;
  finish?: string;
  error?: { name?: string; data?: { message?: string; statusCode?: number; isRetryable?: boolean } };
  time?: { created: number; completed?: number };
}

/** An OpenCode message with its parts (text, tool calls, …). */
export interface MessageWithParts {
  info: MessageInfo;
  parts: { type: string; text?: string; synthetic?: boolean; callID?: string }[];
}

/**
 * What a finished turn produced, from its assistant messages (one per model step): the tokens
 * (input, output, reasoning, cache read and write) and the cost summed over every step, the tool
 * calls (at least as many as the live events counted), the final text, model, provider and finish
 * reason of the last step.
 *
 * @throws StationError (AGENT_ERROR) when a step ended in a provider error; retryable when the
 * provider said so.
 */
export function summarizeTurn(replies: MessageWithParts[], toolEvents: number): PromptResult {
  const last = replies.at(-1);
  const error = replies.map((m) => m.info.error).find(Boolean);
  if (error && error.name !== "MessageAbortedError") {
    const message = withoutStack(error.data?.message ?? error.name ?? "provider error").message;
    throw new StationError(ErrorCodes.AgentError, `provider error: ${message}`, {
      retryable: error.data?.isRetryable === true,
    });
  }
  const tokens: TokenUsage = { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0 };
  let cost = 0;
  let toolCalls = 0;
  for (const m of replies) {
    cost += m.info.cost ?? 0;
    tokens.input += m.info.tokens?.input ?? 0;
    tokens.output += m.info.tokens?.output ?? 0;
    tokens.reasoning += m.info.tokens?.reasoning ?? 0;
    tokens.cacheRead += m.info.tokens?.cache.read ?? 0;
    tokens.cacheWrite += m.info.tokens?.cache.write ?? 0;
    toolCalls += m.parts.filter((p) => p.type === "tool").length;
  }
  const text = (last?.parts ?? [])
    .filter((p) => p.type === "text" && !p.synthetic && typeof p.text === "string")
    .map((p) => p.text)
    .join("");
  return {
    text,
    toolCalls: Math.max(toolCalls, toolEvents),
    tokens,
    cost,
    ...(last?.info.modelID ? { model: last.info.modelID } : {}),
    ...(last?.info.providerID ? { provider: last.info.providerID } : {}),
    ...(last?.info.finish ? { finishReason: last.info.finish } : {}),
    steps: replies.length,
  };
}
