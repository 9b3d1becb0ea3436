import { describe, expect, it } from "vitest";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { summarizeTurn } from "@station-coding/worker/internal";
import type { MessageWithParts } from "@station-coding/worker/internal";

function step(
  n: number,
  extra: Partial<MessageWithParts["info"]> = {},
  parts: MessageWithParts["parts"] = [],
) {
  return {
    info: {
      id: `m${n}`,
      role: "assistant" as const,
      cost: 0.01 * n,
      tokens: { input: 100 * n, output: 10 * n, reasoning: n, cache: { read: 5 * n, write: 2 * n } },
      ...extra,
    },
    parts,
  };
}

describe("summarizeTurn", () => {
  it("sums tokens and cost over every model step and takes text, model and finish from the last", () => {
    const result = summarizeTurn(
      [
        step(1, {}, [{ type: "tool" }, { type: "text", text: "thinking aloud" }]),
        step(2, { modelID: "m", providerID: "p", finish: "stop" }, [
          { type: "text", text: "done " },
          { type: "text", text: "(synthetic)", synthetic: true },
          { type: "text", text: "here" },
        ]),
      ],
      0,
    );
    expect(result).toEqual({
      text: "done here",
      toolCalls: 1,
      tokens: { input: 300, output: 30, reasoning: 3, cacheRead: 15, cacheWrite: 6 },
      cost: 0.01 + 0.02,
      model: "m",
      provider: "p",
      finishReason: "stop",
      steps: 2,
    });
  });

  it("counts at least the tool calls the live events saw", () => {
    expect(summarizeTurn([step(1)], 3).toolCalls).toBe(3);
  });

  it("turns a provider error into AGENT_ERROR, retryable only when the provider says so", () => {
    const failed = step(1, {
      error: { name: "APIError", data: { message: "overloaded", isRetryable: true } },
    });
    expect(() => summarizeTurn([failed], 0)).toThrow(StationError);
    try {
      summarizeTurn([failed], 0);
    } catch (err) {
      expect(err).toMatchObject({ code: ErrorCodes.AgentError, retryable: true });
      expect((err as Error).message).toBe("provider error: overloaded");
    }
    const aborted = step(1, { error: { name: "MessageAbortedError" } });
    expect(summarizeTurn([aborted], 0).steps).toBe(1);
  });
});
