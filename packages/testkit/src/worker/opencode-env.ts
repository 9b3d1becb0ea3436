// Real OpenCode for end-to-end tests: a managed `opencode serve` from the pinned opencode-ai
// package, pointed at the scripted OpenAI-compatible model server of the testkit.
import { ScriptedModelServer } from "../model-server.js";
import type { Scenario } from "../scenario.js";
import { OpenCodeDriver, mergeConfig } from "@station-coding/worker";
import type { OpenCodeDriverOptions } from "@station-coding/worker";

/** The opencode config that routes every model call to the scripted server. */
export function fakeProviderConfig(baseURL: string): Record<string, unknown> {
  return {
    model: "fake/fake-model",
    small_model: "fake/fake-model",
    provider: {
      fake: {
        npm: "@ai-sdk/openai-compatible",
        name: "Fake",
        options: { baseURL, apiKey: "x" },
        models: { "fake-model": { name: "Fake", tool_call: true, limit: { context: 100000, output: 4096 } } },
      },
    },
  };
}

/**
 * Starts the scripted model server and an OpenCode driver (managed server, sandbox on unless
 * `options.sandbox` says otherwise) that uses it; `workspaceRoot` must hold the worker's workspaces.
 */
export async function startOpenCode(
  scenarios: Scenario[],
  options: Partial<OpenCodeDriverOptions> & { workspaceRoot: string },
): Promise<{ model: ScriptedModelServer; driver: OpenCodeDriver; close(): Promise<void> }> {
  const model = await ScriptedModelServer.start({ scenarios });
  const driver = await OpenCodeDriver.start({
    ...options,
    server: {
      ...options.server,
      config: mergeConfig(fakeProviderConfig(model.url), options.server?.config ?? {}),
    },
  });
  return {
    model,
    driver,
    async close() {
      await driver.close();
      await model.stop();
    },
  };
}
