import type { Scenario } from "./scenario.js";
import { inWorkdir } from "./scenarios.js";

/** The demo task's prompt, the same for the scripted model and a real provider. */
export const DEMO_PROMPT =
  "In src/greet.js, make greet() greet the world when no name is given and use a template literal. " +
  "Add tests for both cases in test/greet.test.js and run them with `node --test`.";

const GREET_BEFORE = 'export function greet(name) {\n  return "Hello, " + name + "!";\n}';
const GREET_AFTER = 'export function greet(name = "world") {\n  return `Hello, ${name}!`;\n}';
const GREET_TEST = [
  'import assert from "node:assert/strict";',
  'import { test } from "node:test";',
  'import { greet } from "../src/greet.js";',
  "",
  'test("greets by name", () => assert.equal(greet("Ada"), "Hello, Ada!"));',
  'test("greets the world when no name is given", () => assert.equal(greet(), "Hello, world!"));',
  "",
].join("\n");

/**
 * What the scripted model does with the demo prompt, through OpenCode's real tools: reads
 * `src/greet.js`, edits it, writes a test file, runs `node --test`, then sums up. Any prompt
 * selects it, so `station-coding submit` against a demo worker plays it too.
 */
export function demoRepoScenario(): Scenario {
  return {
    name: "demo-repo",
    match: /[\s\S]*/,
    steps: [
      {
        reasoning: "I should read src/greet.js before changing it.",
        toolCalls: [{ name: "read", arguments: (ctx) => ({ filePath: inWorkdir(ctx, "src/greet.js") }) }],
        usage: { prompt_tokens: 1850, completion_tokens: 42, reasoning_tokens: 12 },
        chunkDelayMs: 30,
      },
      {
        reasoning: "Default the name to world and switch to a template literal.",
        toolCalls: [
          {
            name: "edit",
            arguments: (ctx) => ({
              filePath: inWorkdir(ctx, "src/greet.js"),
              oldString: GREET_BEFORE,
              newString: GREET_AFTER,
            }),
          },
        ],
        usage: { prompt_tokens: 1990, completion_tokens: 85, reasoning_tokens: 14, cached_tokens: 1850 },
        chunkDelayMs: 30,
      },
      {
        toolCalls: [
          {
            name: "write",
            arguments: (ctx) => ({ filePath: inWorkdir(ctx, "test/greet.test.js"), content: GREET_TEST }),
          },
        ],
        usage: { prompt_tokens: 2120, completion_tokens: 120, cached_tokens: 1990 },
        chunkDelayMs: 30,
      },
      {
        toolCalls: [{ name: "bash", arguments: { command: "node --test" } }],
        usage: { prompt_tokens: 2290, completion_tokens: 24, cached_tokens: 2120 },
        chunkDelayMs: 30,
      },
      {
        text:
          'greet() now defaults to "world" and uses a template literal. ' +
          "I added test/greet.test.js with both cases; `node --test` passes.",
        usage: { prompt_tokens: 2610, completion_tokens: 38, cached_tokens: 2290 },
        chunkDelayMs: 30,
      },
    ],
  };
}

/**
 * The opencode config that sends every model call to the scripted model server at `baseURL`
 * (an OpenAI-compatible provider `scripted`), priced like a mid-range model so the demo shows a cost.
 */
export function scriptedProviderConfig(baseURL: string): Record<string, unknown> {
  return {
    model: "scripted/demo-model",
    small_model: "scripted/demo-model",
    provider: {
      scripted: {
        npm: "@ai-sdk/openai-compatible",
        name: "Scripted (offline)",
        options: { baseURL, apiKey: "offline" },
        models: {
          "demo-model": {
            name: "Scripted demo model",
            tool_call: true,
            limit: { context: 100_000, output: 4_096 },
            cost: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 },
          },
        },
      },
    },
  };
}
