/**
 * @packageDocumentation
 * `@station-coding/testkit/worker`: test support around the worker, for the tests and benchmarks of
 * every package: a nats-server with the topology and in-process or child-process workers (harness),
 * a scripted agent driver, and a real OpenCode pointed at the scripted model server. It loads
 * `@station-coding/worker`, which the testkit's main entry never does.
 */

export {
  consumerInfo,
  eventsOf,
  publishTask,
  queuedTasks,
  resultMessages,
  spawnWorker,
  startEnv,
  startWorker,
  testOptions,
  waitResult,
} from "./harness.js";
export { fakeProviderConfig, startOpenCode } from "./opencode-env.js";
export { ScriptedDriver, script } from "./scripted-driver.js";

export type { Env } from "./harness.js";
export type { DriverCall, Script, Step } from "./scripted-driver.js";
