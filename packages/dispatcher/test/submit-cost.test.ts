// Without an OpenTelemetry SDK the dispatch span records nothing, and submit() must not follow the
// task for it (tracing.test.ts, with an SDK, checks that a recording span does).
import { afterEach, beforeEach, expect, it } from "vitest";
import { trace } from "@opentelemetry/api";
import type { DispatcherEnv } from "./support/dispatcher-env.js";
import { startDispatcherEnv } from "./support/dispatcher-env.js";

let env: DispatcherEnv;
beforeEach(async () => {
  env = await startDispatcherEnv(undefined, { monitor: true });
});
afterEach(async () => {
  await env.close();
});

/** The subjects a connection subscribes to, from the server's /connz. */
async function subscriptionsOf(name: string): Promise<string[]> {
  const connz = (await (await fetch(`${env.server.monitorUrl}/connz?subs=1`)).json()) as {
    connections: { name?: string; subscriptions_list?: string[] }[];
  };
  const found = connz.connections.filter((c) => c.name === name);
  expect(found).toHaveLength(1);
  return found[0]!.subscriptions_list ?? []; // the server leaves out an empty list
}

it("leaves no subscription behind per submitted task when nothing records the dispatch span", async () => {
  expect(trace.getTracer("probe").startSpan("probe").isRecording()).toBe(false);
  const dispatcher = await env.connect({ name: "submit-cost" });
  for (let i = 0; i < 20; i += 1) await dispatcher.submit({ taskID: `quiet-${i}`, prompt: "x" });
  await dispatcher.connection.flush();
  expect((await subscriptionsOf("submit-cost")).filter((s) => s.includes("quiet-"))).toEqual([]);

  // Someone waiting still gets a subscription, for as long as they wait.
  const waiting = dispatcher
    .task("quiet-0")
    .result({ timeout: 60_000 })
    .catch(() => undefined);
  await dispatcher.connection.flush();
  expect((await subscriptionsOf("submit-cost")).filter((s) => s.includes("quiet-"))).toEqual([
    "station.coding.result.quiet-0",
  ]);
  await dispatcher.close();
  await waiting;
});
