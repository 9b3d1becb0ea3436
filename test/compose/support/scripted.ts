// The model the compose tests script, and how they watch tasks from this machine: the demo
// profile's model service started with scenarios of the tests, a dispatcher and a wiretap on the
// project's NATS through its published port (loopback).
import { join } from "node:path";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { StreamEvent, TaskResult } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";

/** What the sandbox probe prints when the agent's bash runs confined inside the worker container. */
export const CONFINED = [
  // bubblewrap is PID 1 of the tool's own PID namespace (in the container itself it is tini).
  "pid1=bwrap",
  // An empty environment: nothing of the worker's.
  "nats_url=unset",
  // The system read-only, the workspace; not the worker's code.
  "app=hidden",
  // Its own network namespace: NATS is neither reachable directly nor through the worker's proxy.
  "nats_direct=unreachable",
  "nats_proxy=unreachable",
  "CapEff:\t0000000000000000",
];

/**
 * The script the `sandbox check` scenario writes into the workspace and runs with bash: prints what
 * {@link CONFINED} expects. A file, because OpenCode refuses a command that names paths outside the
 * workspace before the sandbox is even asked.
 */
const SANDBOX_PROBE = [
  'echo "pid1=$(cat /proc/1/comm)"',
  'echo "nats_url=${NATS_URL:-unset}"',
  "if [ -e /app/packages ]; then echo app=visible; else echo app=hidden; fi",
  "if curl -sf -m 5 --noproxy '*' http://nats:8222/healthz >/dev/null 2>&1; then echo nats_direct=reachable; else echo nats_direct=unreachable; fi",
  "if curl -sf -m 5 http://nats:8222/healthz >/dev/null 2>&1; then echo nats_proxy=reachable; else echo nats_proxy=unreachable; fi",
  "grep CapEff /proc/self/status",
  "echo ok > sandbox.txt",
  "",
].join("\n");

/** Seconds the `slow task` scenario's bash command runs: long enough to kill or stop a worker mid-task. */
export const SLOW_SECONDS = 12;

/** Scenarios of the model server (its JSON format): a prompt containing `match` selects one. */
export const SCENARIOS = [
  {
    name: "slow",
    match: "slow task",
    steps: [
      {
        toolCalls: [
          { name: "bash", arguments: { command: `sleep ${SLOW_SECONDS} && echo slept > slept.txt` } },
        ],
      },
      { text: "Slept and wrote slept.txt." },
    ],
  },
  {
    name: "sandbox-check",
    match: "sandbox check",
    steps: [
      {
        toolCalls: [
          { name: "write", arguments: { filePath: "{{workdir}}/probe.sh", content: SANDBOX_PROBE } },
        ],
      },
      { toolCalls: [{ name: "bash", arguments: { command: "sh probe.sh" } }] },
      { text: "Checked." },
    ],
  },
  {
    name: "hello",
    match: "",
    steps: [
      {
        toolCalls: [{ name: "write", arguments: { filePath: "{{workdir}}/hello.txt", content: "hello\n" } }],
      },
      { text: "Created hello.txt." },
    ],
  },
];

/** The override part that starts the model service with {@link SCENARIOS} (written as `scenarios.json`). */
export function scriptedModel(dir: string): Record<string, unknown> {
  return {
    services: {
      model: {
        command: [
          "node",
          "packages/testkit/dist/bin/model-server.js",
          "--host",
          "0.0.0.0",
          "--port",
          "8080",
          "/scenarios/scenarios.json",
        ],
        volumes: [`${join(dir, "scenarios.json")}:/scenarios/scenarios.json:ro`],
      },
    },
  };
}

/** A dispatcher and a wiretap on every result message, on NATS servers published on loopback. */
export class Observer {
  private constructor(
    readonly dispatcher: CodingDispatcher,
    private readonly nc: NatsConnection,
    private readonly sub: Subscription,
    /** Every result message seen, by taskID (raw payloads: a repeat is the same text). */
    readonly results: Map<string, string[]>,
  ) {}

  static async connect(servers: string[]): Promise<Observer> {
    const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    const results = new Map<string, string[]>();
    const sub = nc.subscribe("station.coding.result.*", {
      callback: (_err, msg) => {
        const taskID = msg.subject.split(".").at(-1)!;
        results.set(taskID, [...(results.get(taskID) ?? []), msg.string()]);
      },
    });
    await nc.flush();
    const dispatcher = await CodingDispatcher.connect({ servers });
    return new Observer(dispatcher, nc, sub, results);
  }

  /** Submits a task and returns its ID. */
  async submit(prompt: string, taskID: string): Promise<string> {
    await this.dispatcher.submit({ taskID, prompt });
    return taskID;
  }

  /** Waits for the first event of a task that `accept` accepts, and returns it. */
  async event(taskID: string, accept: (e: StreamEvent) => boolean, timeout = 90_000): Promise<StreamEvent> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeout);
    try {
      for await (const e of this.dispatcher.task(taskID).events({ signal: abort.signal })) {
        if (accept(e)) return e;
      }
    } finally {
      clearTimeout(timer);
      abort.abort();
    }
    throw new Error(`task ${taskID}: no such event within ${timeout} ms (or it ended without one)`);
  }

  /** Every event of a finished task, in order. */
  async events(taskID: string): Promise<StreamEvent[]> {
    const out: StreamEvent[] = [];
    for await (const e of this.dispatcher.task(taskID).events({ settle: 500 })) out.push(e);
    return out;
  }

  /** The task's stored result. */
  result(taskID: string, timeout = 150_000): Promise<TaskResult> {
    return this.dispatcher.task(taskID).result({ timeout });
  }

  /** Distinct result messages seen for a task, once at least one was. */
  async distinctResults(taskID: string): Promise<TaskResult[]> {
    await waitFor(() => (this.results.get(taskID)?.length ?? 0) > 0, {
      timeout: 10_000,
      message: `a result message of ${taskID} on the wiretap`,
    });
    return [...new Set(this.results.get(taskID))].map((text) => JSON.parse(text) as TaskResult);
  }

  async close(): Promise<void> {
    this.sub.unsubscribe();
    await this.dispatcher.close();
    await this.nc.close();
  }
}

/** The container hostname in a worker ID (`<hostname>-<pid>-<random>`). */
export function hostOf(workerID: string | undefined): string {
  return (workerID ?? "").split("-")[0] ?? "";
}
