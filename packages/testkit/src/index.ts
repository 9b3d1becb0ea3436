/**
 * @packageDocumentation
 * Test kit for station-coding: a nats-server launcher (single server and cluster), a polling
 * `waitFor`, and unique names for test resources.
 */

export { NatsCluster } from "./nats-cluster.js";
export { NatsServer } from "./nats-server.js";
export { NatsServerError } from "./nats-server-error.js";
export { tempDir, uniqueName } from "./unique.js";
export { WaitForTimeoutError, waitFor } from "./wait-for.js";
export type { Falsy } from "./wait-for.js";

export type { NatsClusterOptions } from "./nats-cluster.js";
export type { NatsServerClusterOptions, NatsServerOptions, NatsServerStopOptions } from "./nats-server.js";
export type { NatsServerErrorCode } from "./nats-server-error.js";
export type { WaitForOptions } from "./wait-for.js";
