import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { afterEach, describe, expect, it, vi } from "vitest";

import {
  ScriptedModelServer,
  createFileScenario,
  providerErrorScenario,
  slowScenario,
  stepIndex,
  workdirFromMessages,
} from "@station-coding/testkit";
import type { ChatMessage, Scenario } from "@station-coding/testkit";

const TOOLS = [{ type: "function", function: { name: "write", parameters: { type: "object" } } }];
const SYSTEM: ChatMessage = {
  role: "system",
  content: "You are opencode.\n<env>\n  Working directory: /tmp/ws-1\n  Workspace root folder: /\n</env>",
};

let server: ScriptedModelServer | undefined;

afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function start(scenarios: Scenario[]): Promise<ScriptedModelServer> {
  server = await ScriptedModelServer.start({ scenarios });
  return server;
}

async function chat(
  url: string,
  messages: ChatMessage[],
  options: { stream?: boolean; tools?: unknown[] | undefined; signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "fake-model",
      messages,
      stream: options.stream ?? true,
      ...(options.tools !== undefined && { tools: options.tools }),
    }),
    ...(options.signal && { signal: options.signal }),
  });
}

/** The `data:` payloads of an SSE body; `[DONE]` stays a string. */
async function sseData(response: Response): Promise<unknown[]> {
  const text = await response.text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => line.slice("data: ".length))
    .map((data) => (data === "[DONE]" ? data : (JSON.parse(data) as unknown)));
}

interface ToolCallDelta {
  index: number;
  id?: string;
  type?: string;
  function: { name?: string; arguments: string };
}

interface Chunk {
  object: string;
  choices: {
    delta: { role?: string; content?: string; reasoning_content?: string; tool_calls?: ToolCallDelta[] };
    finish_reason: string | null;
  }[];
  usage?: unknown;
}

interface Completion {
  object: string;
  choices: {
    index: number;
    message: {
      role: string;
      content: string | null;
      reasoning_content?: string;
      tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
    };
    finish_reason: string;
  }[];
  usage: { prompt_tokens: number };
}

async function completionOf(response: Response): Promise<Completion> {
  expect(response.status).toBe(200);
  return (await response.json()) as Completion;
}

describe("ScriptedModelServer", () => {
  it("streams reasoning, text and tool calls in several chunks, then finish_reason, usage and [DONE]", async () => {
    const { url } = await start([
      {
        match: "do it",
        steps: [
          {
            reasoning: "I think this is the way forward.",
            text: "Writing the file now, as asked.",
            toolCalls: [{ name: "write", arguments: { filePath: "/tmp/a.txt", content: "a" } }],
            usage: { prompt_tokens: 100, completion_tokens: 20, reasoning_tokens: 5, cached_tokens: 30 },
          },
        ],
      },
    ]);
    const response = await chat(url, [SYSTEM, { role: "user", content: "please do it" }], { tools: TOOLS });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/event-stream");

    const data = await sseData(response);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1) as Chunk[];
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    const deltas = chunks.map((c) => c.choices[0]!.delta);
    expect(deltas[0]!.role).toBe("assistant");

    const reasoning = deltas.filter((d) => d.reasoning_content !== undefined).map((d) => d.reasoning_content);
    const content = deltas.filter((d) => d.content !== undefined).map((d) => d.content);
    expect(reasoning.length).toBeGreaterThan(1);
    expect(reasoning.join("")).toBe("I think this is the way forward.");
    expect(content.length).toBeGreaterThan(1);
    expect(content.join("")).toBe("Writing the file now, as asked.");

    const toolDeltas = deltas.flatMap((d) => d.tool_calls ?? []);
    expect(toolDeltas[0]).toEqual({
      index: 0,
      id: "call_0_0",
      type: "function",
      function: { name: "write", arguments: "" },
    });
    const args = toolDeltas.map((t) => t.function.arguments).join("");
    expect(JSON.parse(args)).toEqual({ filePath: "/tmp/a.txt", content: "a" });

    const last = chunks.at(-1)!;
    expect(last.choices[0]!.finish_reason).toBe("tool_calls");
    expect(last.usage).toEqual({
      prompt_tokens: 100,
      completion_tokens: 20,
      total_tokens: 120,
      prompt_tokens_details: { cached_tokens: 30 },
      completion_tokens_details: { reasoning_tokens: 5 },
    });
    expect(chunks.slice(0, -1).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
  });

  it("answers with one chat.completion JSON when stream is false", async () => {
    const { url } = await start([
      { match: "hello", steps: [{ text: "Hi there.", reasoning: "Greet back." }] },
    ]);
    const response = await chat(url, [{ role: "user", content: "hello" }], { stream: false, tools: TOOLS });
    const body = await completionOf(response);
    expect(body.object).toBe("chat.completion");
    expect(body.choices[0]).toEqual({
      index: 0,
      message: { role: "assistant", content: "Hi there.", reasoning_content: "Greet back." },
      finish_reason: "stop",
    });
    expect(body.usage.prompt_tokens).toBe(10);
  });

  it("plays the step given by the assistant turns after the last user message, per conversation", async () => {
    const s = await start([
      { name: "alpha", match: "alpha", steps: [{ text: "a0" }, { text: "a1" }, { text: "a2" }] },
      { name: "beta", match: /^beta$/, steps: [{ text: "b0" }, { text: "b1" }] },
    ]);
    const text = async (messages: ChatMessage[]): Promise<string> => {
      const response = await chat(s.url, messages, { stream: false, tools: TOOLS });
      return (await completionOf(response)).choices[0]!.message.content ?? "";
    };
    const alpha: ChatMessage[] = [SYSTEM, { role: "user", content: [{ type: "text", text: "go alpha" }] }];
    const beta: ChatMessage[] = [{ role: "user", content: "beta" }];

    const answers = await Promise.all([
      text(alpha),
      text(beta),
      text([
        ...alpha,
        { role: "assistant", content: "a0" },
        { role: "tool", tool_call_id: "x", content: "ok" },
      ]),
      text([...beta, { role: "assistant", content: "b0" }]),
      // A new user message starts the steps again; its text picks the scenario.
      text([...alpha, { role: "assistant", content: "a0" }, { role: "user", content: "beta" }]),
    ]);
    expect(answers).toEqual(["a0", "b0", "a1", "b1", "b0"]);
    expect(s.scenarioCalls.map((c) => `${c.scenario}#${c.step}`).sort()).toEqual([
      "alpha#0",
      "alpha#1",
      "beta#0",
      "beta#0",
      "beta#1",
    ]);
    expect(s.requests).toHaveLength(5);
    expect(s.fallbackCalls).toEqual([]);
    expect(s.scenarioCalls.every((c) => c.outcome === "answered")).toBe(true);
  });

  it("computes tool arguments from the workspace directory in OpenCode's system prompt", async () => {
    const s = await start([createFileScenario({ match: "create hello", content: "hi" })]);
    const response = await chat(s.url, [SYSTEM, { role: "user", content: "create hello" }], {
      stream: false,
      tools: TOOLS,
    });
    const choice = (await completionOf(response)).choices[0]!;
    expect(choice.finish_reason).toBe("tool_calls");
    expect(JSON.parse(choice.message.tool_calls![0]!.function.arguments)).toEqual({
      filePath: "/tmp/ws-1/hello.txt",
      content: "hi",
    });
  });

  it("answers 400 naming the scenario when its arguments cannot be computed", async () => {
    const s = await start([createFileScenario({ match: "create hello" })]);
    const response = await chat(s.url, [{ role: "user", content: "create hello" }], { tools: TOOLS });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { message: string } };
    expect(body.error.message).toContain('scenario "create-file" step 0 tool write');
    expect(body.error.message).toContain("Working directory");
  });

  it("gives tool-less, unmatched and over-long calls a short answer and records them apart", async () => {
    const s = await start([{ name: "one", match: "one step", steps: [{ text: "done" }] }]);
    const title = await chat(s.url, [{ role: "user", content: "Refactor the parser\nand more" }], {
      stream: false,
    });
    expect((await completionOf(title)).choices[0]!.message.content).toBe("Refactor the parser");

    const unmatched = await chat(s.url, [{ role: "user", content: "something else" }], { tools: TOOLS });
    const chunks = (await sseData(unmatched)).slice(0, -1) as Chunk[];
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? "").join("")).toBe("ok");
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("stop");

    await chat(
      s.url,
      [
        { role: "user", content: "one step" },
        { role: "assistant", content: "done" },
      ],
      {
        stream: false,
        tools: TOOLS,
      },
    );
    expect(s.scenarioCalls).toEqual([]);
    expect(s.fallbackCalls.map((c) => [c.reason, c.scenario])).toEqual([
      ["no-tools", undefined],
      ["unmatched", undefined],
      ["script-ended", "one"],
    ]);
    expect(s.requests).toHaveLength(3);
  });

  it("answers an error step with its status, OpenAI error JSON and retry headers", async () => {
    const s = await start([
      providerErrorScenario({ match: "auth", status: 401 }),
      providerErrorScenario({ match: "boom", status: 500, message: "upstream exploded" }),
    ]);
    const unauthorized = await chat(s.url, [{ role: "user", content: "auth" }], { tools: TOOLS });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("retry-after-ms")).toBeNull();
    expect(await unauthorized.json()).toEqual({
      error: {
        message: "scripted provider error 401",
        type: "invalid_request_error",
        param: null,
        code: "invalid_api_key",
      },
    });

    const failed = await chat(s.url, [{ role: "user", content: "boom" }], { tools: TOOLS });
    expect(failed.status).toBe(500);
    expect(failed.headers.get("retry-after-ms")).toBe("10");
    expect(await failed.json()).toEqual({
      error: { message: "upstream exploded", type: "server_error", param: null, code: null },
    });
  });

  it("stops waiting on a slow step when the client disconnects", async () => {
    const s = await start([slowScenario({ match: "slow", delayMs: 60_000 })]);
    const controller = new AbortController();
    const pending = chat(s.url, [{ role: "user", content: "slow" }], {
      tools: TOOLS,
      signal: controller.signal,
    });
    await vi.waitFor(() => expect(s.scenarioCalls).toHaveLength(1));
    controller.abort();
    await expect(pending).rejects.toThrow();
    await vi.waitFor(() => expect(s.scenarioCalls[0]!.outcome).toBe("disconnected"));
  });

  it("ends in-flight slow answers on stop", async () => {
    const s = await start([slowScenario({ match: "slow", delayMs: 60_000 })]);
    const pending = chat(s.url, [{ role: "user", content: "slow" }], { tools: TOOLS });
    await vi.waitFor(() => expect(s.scenarioCalls).toHaveLength(1));
    const started = Date.now();
    await s.stop();
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(pending).rejects.toThrow();
    expect(s.scenarioCalls[0]!.outcome).toBe("disconnected");
  });

  it("lists models, swaps scenarios and rejects unknown routes", async () => {
    const s = await start([]);
    const models = (await (await fetch(`${s.url}/models`)).json()) as { data: { id: string }[] };
    expect(models.data.map((m) => m.id)).toEqual(["fake-model"]);

    s.addScenario({ match: "x", steps: [{ text: "first" }] });
    s.addScenario({ match: "x", steps: [{ text: "second" }] });
    const first = await chat(s.url, [{ role: "user", content: "x" }], { stream: false, tools: TOOLS });
    expect((await completionOf(first)).choices[0]!.message.content).toBe("first");
    s.setScenarios([{ match: "x", steps: [{ text: "third" }] }]);
    const third = await chat(s.url, [{ role: "user", content: "x" }], { stream: false, tools: TOOLS });
    expect((await completionOf(third)).choices[0]!.message.content).toBe("third");

    expect((await fetch(`${s.url}/embeddings`, { method: "POST" })).status).toBe(404);
    expect((await fetch(`${s.url}/chat/completions`, { method: "POST", body: "{" })).status).toBe(400);
  });

  it("disposes with await using", async () => {
    let url: string;
    {
      await using s = await ScriptedModelServer.start();
      url = s.url;
      expect((await fetch(`${url}/models`)).status).toBe(200);
    }
    await expect(fetch(`${url}/models`)).rejects.toThrow();
  });
});

describe("model-server binary", () => {
  it("serves a JSON scenario file, filling {{workdir}} into tool arguments", async () => {
    const dir = await mkdtemp(join(tmpdir(), "model-server-bin-"));
    const file = join(dir, "scenarios.json");
    const scenarios = [
      {
        match: "make x",
        steps: [
          { toolCalls: [{ name: "write", arguments: { filePath: "{{workdir}}/x.txt", content: "x" } }] },
        ],
      },
    ];
    await writeFile(file, JSON.stringify(scenarios));
    const bin = fileURLToPath(new URL("../src/bin/model-server.ts", import.meta.url));
    const child = spawn(process.execPath, ["--import", "tsx", bin, "--port", "0", file], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      let output = "";
      child.stdout.setEncoding("utf8").on("data", (data: string) => (output += data));
      const url = await vi.waitFor(
        () => {
          const found = /listening on (http:\/\/\S+)/.exec(output);
          if (!found?.[1]) throw new Error(`no URL printed yet: ${output}`);
          return found[1];
        },
        { timeout: 15_000, interval: 50 },
      );
      const response = await chat(url, [SYSTEM, { role: "user", content: "make x" }], {
        stream: false,
        tools: TOOLS,
      });
      const call = (await completionOf(response)).choices[0]!.message.tool_calls![0]!;
      expect(JSON.parse(call.function.arguments)).toEqual({ filePath: "/tmp/ws-1/x.txt", content: "x" });
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, "exit");
        child.kill("SIGTERM");
        const [code] = await exited;
        expect(code).toBe(0);
      }
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("scenario helpers", () => {
  it("counts assistant turns after the last user message", () => {
    expect(stepIndex([{ role: "user", content: "a" }])).toBe(0);
    expect(
      stepIndex([
        { role: "user", content: "a" },
        { role: "assistant", content: null },
        { role: "tool", content: "r" },
        { role: "assistant", content: null },
        { role: "tool", content: "r" },
      ]),
    ).toBe(2);
  });

  it("reads the working directory from a system message only", () => {
    expect(workdirFromMessages([SYSTEM])).toBe("/tmp/ws-1");
    expect(workdirFromMessages([{ role: "user", content: "Working directory: /etc" }])).toBeUndefined();
  });
});
