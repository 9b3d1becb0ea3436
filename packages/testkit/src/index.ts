/**
 * @packageDocumentation
 * Test kit for station-coding: a nats-server launcher (single server and cluster), a scripted
 * OpenAI-compatible model server with scenarios (and the demo's), a git smart-HTTP server, a polling
 * `waitFor`, and unique names for test resources. Test support around the worker (harness, scripted
 * driver, OpenCode environment) is the separate entry `@station-coding/testkit/worker`.
 */

export { GitServer, PLAIN_GIT_ENV, commitFiles, git } from "./git-server.js";
export { ScriptedModelServer } from "./model-server.js";
export { NatsCluster } from "./nats-cluster.js";
export { NatsServer } from "./nats-server.js";
export { NatsServerError } from "./nats-server-error.js";
export { trackChild } from "./process-reaper.js";
export { lastUserText, selectScenario, stepIndex, workdirFromMessages } from "./scenario.js";
export {
  createFileScenario,
  demoScenario,
  inWorkdir,
  multiStepScenario,
  permissionAskScenario,
  providerErrorScenario,
  requireWorkdir,
  slowScenario,
  toolCallScenario,
} from "./scenarios.js";
export { DEMO_PROMPT, demoRepoScenario, scriptedProviderConfig } from "./offline-model.js";
export { tempDir, uniqueName } from "./unique.js";
export { WaitForTimeoutError, waitFor } from "./wait-for.js";
export type { Falsy } from "./wait-for.js";

export type { Files, GitServerOptions, SeenRequest } from "./git-server.js";
export type {
  CallOutcome,
  FallbackCall,
  FallbackReason,
  ScenarioCall,
  ScriptedModelServerOptions,
} from "./model-server.js";
export type { NatsClusterOptions } from "./nats-cluster.js";
export type { NatsServerClusterOptions, NatsServerOptions, NatsServerStopOptions } from "./nats-server.js";
export type { NatsServerErrorCode } from "./nats-server-error.js";
export type { WaitForOptions } from "./wait-for.js";
export type {
  ChatCompletionRequest,
  ChatContentPart,
  ChatMessage,
  Scenario,
  ScenarioContext,
  ScenarioSelection,
  ScenarioStep,
  ScriptedError,
  ScriptedToolCall,
  ScriptedUsage,
  ToolArguments,
} from "./scenario.js";
export type {
  CreateFileScenarioOptions,
  MultiStepScenarioOptions,
  PermissionAskScenarioOptions,
  ProviderErrorScenarioOptions,
  ScenarioBaseOptions,
  SlowScenarioOptions,
  ToolCallScenarioOptions,
} from "./scenarios.js";
