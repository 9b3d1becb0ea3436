#!/usr/bin/env node
/**
 * Runs the scripted model server until SIGINT/SIGTERM and prints its URL (the `baseURL` for OpenCode).
 *
 *   model-server [--port 18080] [--host 127.0.0.1] [scenarios.json | scenarios.ts]
 *
 * Without a file it plays the demo scenario. A `.json` file holds an array of scenarios whose `match`
 * is a substring; in tool arguments the text `{{workdir}}` becomes the workspace directory. A
 * module (`.ts` via tsx, `.js`) default-exports a scenario array and may use patterns and functions.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

import { ScriptedModelServer } from "../model-server.js";
import type { Scenario, ScenarioContext, ScenarioStep } from "../scenario.js";
import { demoScenario } from "../scenarios.js";

function replaceWorkdir(value: unknown, workdir: string): unknown {
  if (typeof value === "string") return value.replaceAll("{{workdir}}", workdir);
  if (Array.isArray(value)) return value.map((item) => replaceWorkdir(item, workdir));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceWorkdir(v, workdir)]));
  }
  return value;
}

/** Checks the shape of JSON scenarios and turns `{{workdir}}` in tool arguments into computed arguments. */
function fromJson(data: unknown, file: string): Scenario[] {
  if (!Array.isArray(data)) throw new Error(`${file}: expected a JSON array of scenarios`);
  return data.map((raw: unknown, i) => {
    const scenario = raw as Partial<Scenario>;
    if (typeof scenario.match !== "string" || !Array.isArray(scenario.steps)) {
      throw new Error(`${file}: scenario ${i} needs "match" (a string) and "steps" (an array)`);
    }
    return {
      ...scenario,
      match: scenario.match,
      steps: scenario.steps.map((step: ScenarioStep) => ({
        ...step,
        ...(step.toolCalls && {
          toolCalls: step.toolCalls.map((call) => ({
            ...call,
            arguments: (ctx: ScenarioContext) =>
              replaceWorkdir(call.arguments, ctx.workdir ?? "") as Record<string, unknown>,
          })),
        }),
      })),
    };
  });
}

async function loadScenarios(file: string | undefined): Promise<Scenario[]> {
  if (file === undefined) return [demoScenario()];
  const path = resolve(file);
  if (path.endsWith(".json")) return fromJson(JSON.parse(await readFile(path, "utf8")), file);
  const module = (await import(pathToFileURL(path).href)) as { default?: unknown };
  if (!Array.isArray(module.default)) throw new Error(`${file}: default-export an array of scenarios`);
  return module.default as Scenario[];
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { port: { type: "string", default: "0" }, host: { type: "string", default: "127.0.0.1" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port ${values.port}: must be an integer from 0 to 65535`);
  }
  const scenarios = await loadScenarios(positionals[0]);
  const server = await ScriptedModelServer.start({ scenarios, port, host: values.host });
  console.log(`scripted model server listening on ${server.url}`);
  const stop = (): void => {
    server.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
