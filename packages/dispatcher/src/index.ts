/**
 * @packageDocumentation
 * The station-coding dispatcher: submits coding tasks over NATS JetStream, follows their live
 * events and results, cancels them, and reads sessions, agent context, artifacts, worker status
 * and dead letters.
 */

export { AgentContextApi } from "./agent-context.js";
export { ArtifactsApi } from "./artifacts.js";
export { CodingDispatcher } from "./dispatcher.js";
export { DeadLettersApi } from "./dead-letters.js";
export { WaitTimeoutError, toStationError } from "./errors.js";
export { resolveDispatcherOptions } from "./options.js";
export { SessionsApi } from "./sessions.js";
export { TaskHandle } from "./task-handle.js";
export { DISPATCHER_VERSION, DISPATCH_SPAN, TRACER_NAME } from "./tracing.js";

export type { AgentContextSetOptions } from "./agent-context.js";
export type {
  CodeInput,
  CodingCloseInput,
  CodingOpenInput,
  CommitInput,
  PushInput,
  ToolCallOptions,
} from "./coding-tools.js";
export type { TaskPhase } from "./errors.js";
export type { DispatcherOptions, ResolvedDispatcherOptions } from "./options.js";
export type { DispatcherStatus, TaskConsumerStatus, WorkerStatus } from "./status.js";
export type { ReplayCredentials } from "@station-coding/protocol";
export type { EventsOptions } from "./task-events.js";
export type { ResultOptions, SubmitReceipt } from "./task-handle.js";
export type { TaskProgress } from "./task-state.js";
