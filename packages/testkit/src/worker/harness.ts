// Shared helpers for the worker runtime tests: a real nats-server per test, task publishing,
// result and event readers, in-process and child-process workers.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { DeliverPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/transport-node";
import type { CodingNames, StreamEvent, TaskInput, TaskResult } from "@station-coding/protocol";
import {
  StreamEvent as StreamEventSchema,
  TaskLookups,
  codingNames,
  ensureTopology,
} from "@station-coding/protocol";
import { NatsServer } from "../nats-server.js";
import type { NatsServerOptions } from "../nats-server.js";
import { tempDir } from "../unique.js";
import { waitFor } from "../wait-for.js";
import { CodingWorker } from "@station-coding/worker";
import type { AgentDriver, WorkerOptions } from "@station-coding/worker";
import { ScriptedDriver } from "./scripted-driver.js";

/** A fresh server, a client connection and the single-tenant names. */
export interface Env {
  server: NatsServer;
  nc: NatsConnection;
  names: CodingNames;
  lookups: TaskLookups;
  workspaceDir: string;
  workers: CodingWorker[];
  children: ChildProcess[];
  logs: string[];
  close(): Promise<void>;
}

/** Starts a nats-server with a temp store, connects, and creates the topology. */
export async function startEnv(org?: string, serverOptions: NatsServerOptions = {}): Promise<Env> {
  const server = await NatsServer.start(serverOptions);
  const nc = await connect({ servers: server.url });
  const names = codingNames(org ? { org } : {});
  await ensureTopology(nc, names);
  const env: Env = {
    server,
    nc,
    names,
    lookups: await TaskLookups.create(nc, names),
    workspaceDir: await tempDir("ws"),
    workers: [],
    children: [],
    logs: [],
    async close() {
      for (const child of env.children) child.kill("SIGKILL");
      await Promise.all(env.workers.map((w) => w.stop().catch(() => undefined)));
      await nc.close().catch(() => undefined);
      await server.stop();
    },
  };
  return env;
}

/** Default options for test workers: short leases and delays so failures recover fast. */
export function testOptions(env: Env, overrides: Partial<WorkerOptions> = {}): Omit<WorkerOptions, "driver"> {
  return {
    servers: env.server.url,
    workspaceDir: env.workspaceDir,
    ackWait: 2_000,
    retryDelay: 100,
    sessionBusyDelay: 100,
    pullExpires: 1_000,
    heartbeatInterval: 500,
    shutdownGrace: 5_000,
    abortGrace: 1_000,
    logLevel: "debug",
    logDestination: { write: (line: string) => void env.logs.push(line) },
    ...overrides,
  };
}

/** Starts an in-process worker. */
export async function startWorker(
  env: Env,
  driver: AgentDriver = new ScriptedDriver(),
  overrides: Partial<WorkerOptions> = {},
): Promise<CodingWorker> {
  const worker = await CodingWorker.start({ ...testOptions(env, overrides), driver });
  env.workers.push(worker);
  return worker;
}

/**
 * The child worker's entry beside this file: run from source (tests) through tsx with the tests'
 * tsconfig, whose paths resolve the workspace packages to source; from dist with plain node.
 */
const fromSource = import.meta.url.endsWith(".ts");
const childEntry = fileURLToPath(
  new URL(fromSource ? "./worker-process.ts" : "./worker-process.js", import.meta.url),
);
const childTsconfig = fileURLToPath(new URL("../../test/tsconfig.json", import.meta.url));

/** Starts a worker in a child process (scripted driver); resolves when it is running. */
export async function spawnWorker(env: Env, overrides: Partial<WorkerOptions> = {}): Promise<ChildProcess> {
  const { logDestination: _ignored, ...options } = testOptions(env, overrides);
  const child = spawn(
    process.execPath,
    [...(fromSource ? ["--import", "tsx"] : []), childEntry, JSON.stringify(options)],
    {
      env: { ...process.env, ...(fromSource ? { TSX_TSCONFIG_PATH: childTsconfig } : {}) },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  env.children.push(child);
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    env.logs.push(chunk.toString());
  });
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => output.includes("ready ") || child.exitCode !== null, {
    timeout: 20_000,
    message: "child worker to start",
  });
  if (child.exitCode !== null) throw new Error(`child worker exited early:\n${output}`);
  return child;
}

/** Publishes a task the way any NATS client would (JetStream publish, optional message id). */
export async function publishTask(env: Env, task: TaskInput | string, msgID?: string): Promise<number> {
  const h = headers();
  if (msgID) h.set("Nats-Msg-Id", msgID);
  const data = typeof task === "string" ? task : JSON.stringify(task);
  const ack = await jetstream(env.nc).publish(env.names.taskSubject, data, { headers: h });
  return ack.seq;
}

/** Waits for the stored result of a task. */
export async function waitResult(env: Env, taskID: string, timeout = 20_000): Promise<TaskResult> {
  return waitFor(() => env.lookups.result(taskID), { timeout, message: `result of ${taskID}` });
}

/** Every stored event of a task, in stream order. */
export async function eventsOf(env: Env, taskID: string): Promise<StreamEvent[]> {
  const out: StreamEvent[] = [];
  const subject = env.names.streamSubject(taskID);
  const jsm = await jetstreamManager(env.nc);
  const info = await jsm.streams.info(env.names.streams.events, { subjects_filter: subject });
  const count = info.state.subjects?.[subject] ?? 0;
  if (count === 0) return out;
  const consumer = await jetstream(env.nc).consumers.get(env.names.streams.events, {
    filter_subjects: subject,
    deliver_policy: DeliverPolicy.All,
  });
  const iter = await consumer.fetch({ max_messages: count, expires: 5_000 });
  for await (const msg of iter) {
    out.push(StreamEventSchema.parse(msg.json()));
    if (msg.info.pending === 0) break;
  }
  return out;
}

/** Number of results stored for a task (the results stream keeps one per subject, so also counts messages ever). */
export async function resultMessages(env: Env, taskID: string): Promise<number> {
  const jsm = await jetstreamManager(env.nc);
  const subject = env.names.resultSubject(taskID);
  const info = await jsm.streams.info(env.names.streams.results, { subjects_filter: subject });
  return info.state.subjects?.[subject] ?? 0;
}

/** The task consumer as the server reports it (pending, ack pending, redelivered, config). */
export async function consumerInfo(env: Env) {
  const jsm = await jetstreamManager(env.nc);
  return jsm.consumers.info(env.names.streams.tasks, env.names.consumer);
}

/** Messages still in the task stream (acked or terminated ones are gone). */
export async function queuedTasks(env: Env): Promise<number> {
  const jsm = await jetstreamManager(env.nc);
  return (await jsm.streams.info(env.names.streams.tasks)).state.messages;
}

export { ScriptedDriver };
export { script } from "./scripted-driver.js";
