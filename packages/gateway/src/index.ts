/**
 * @packageDocumentation
 * The station-coding HTTP/SSE gateway: submit, follow and inspect coding tasks over HTTP for
 * callers without a NATS client, on top of the dispatcher library.
 */

export { TokenTable, hashToken } from "./auth.js";
export { GatewayConfig, GatewayRole, GatewayTokenConfig } from "./config.js";
export { DEFAULT_LISTEN, Gateway } from "./gateway.js";
export { parseListen } from "@station-coding/telemetry";
export { API_VERSION } from "./openapi.js";
export { closeNamespace, openNamespace } from "./namespaces.js";
export { HttpProblem, PROBLEM_JSON } from "./problem.js";

export type { Principal } from "./auth.js";
export type { GatewayOptions } from "./gateway.js";
export type { GatewayNamespace } from "./namespaces.js";
export type { ProblemDocument } from "./problem.js";
