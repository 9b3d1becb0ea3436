// Test support for the dispatcher: the worker's harness (real nats-server, real workers with the
// scripted driver) plus dispatchers that are closed with the environment.
import { pino } from "pino";
import { waitFor } from "@station-coding/testkit";
import type { NatsServerOptions } from "@station-coding/testkit";
import { CodingDispatcher } from "@station-coding/dispatcher";
import type { DispatcherOptions } from "@station-coding/dispatcher";
import type { Env } from "@station-coding/testkit/worker";
import { startEnv } from "@station-coding/testkit/worker";

/** The worker harness environment plus the dispatchers opened on it. */
export interface DispatcherEnv extends Env {
  dispatchers: CodingDispatcher[];
  /** Log lines of every dispatcher, for failure messages. */
  dispatcherLogs: string[];
  /** Connects a dispatcher to this environment's server (closed by `close`). */
  connect(options?: DispatcherOptions): Promise<CodingDispatcher>;
}

/** Starts a nats-server with the topology and returns an environment that also makes dispatchers. */
export async function startDispatcherEnv(
  org?: string,
  serverOptions: NatsServerOptions = {},
): Promise<DispatcherEnv> {
  const base = await startEnv(org, serverOptions);
  const dispatchers: CodingDispatcher[] = [];
  const dispatcherLogs: string[] = [];
  const closeBase = base.close.bind(base);
  const env: DispatcherEnv = Object.assign(base, {
    dispatchers,
    dispatcherLogs,
    async connect(options: DispatcherOptions = {}) {
      const dispatcher = await CodingDispatcher.connect({
        servers: base.server.url,
        ...(org !== undefined ? { org } : {}),
        logger: pino({ level: "debug" }, { write: (line: string) => void dispatcherLogs.push(line) }),
        ...options,
      });
      dispatchers.push(dispatcher);
      return dispatcher;
    },
    async close() {
      await Promise.all(dispatchers.map((d) => d.close()));
      await closeBase();
    },
  });
  return env;
}

/** Collects every event of an async iterable. */
export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

/** `waitFor` for a value: polls until `fn` gives one (not undefined, false or null) and returns it. */
export async function until<T>(
  fn: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  message: string,
  timeout?: number,
): Promise<T> {
  return await waitFor(fn, { message, ...(timeout !== undefined ? { timeout } : {}) });
}
