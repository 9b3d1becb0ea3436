import { get } from "node:http";

import { freePorts } from "./free-port.js";
import { NatsServer } from "./nats-server.js";
import { NatsServerError } from "./nats-server-error.js";
import { uniqueName } from "./unique.js";
import { waitFor } from "./wait-for.js";

/** Options of {@link NatsCluster.start}. */
export interface NatsClusterOptions {
  /**
   * Number of nodes.
   * @default 3
   */
  size?: number;
  /**
   * Enable clustered JetStream on every node.
   * @default true
   */
  jetstream?: boolean;
  /** nats-server config text appended to every node's config. */
  config?: string;
  /**
   * Cluster name; nodes are named `<name>-n0`, `<name>-n1`, ...
   * @default a unique name
   */
  name?: string;
  /** nats-server binary, as in {@link NatsServerOptions.bin}. */
  bin?: string;
  /**
   * Copy every node's debug log to this process's stderr.
   * @default false
   */
  debug?: boolean;
  /**
   * Milliseconds to wait for the cluster to form (routes up; with JetStream, a meta leader that sees
   * every node as current).
   * @default 15_000
   */
  readyTimeout?: number;
}

/** The parts of `/jsz` read here. */
interface Jsz {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: { name: string; current: boolean; offline?: boolean }[];
  };
}

/** Attempts when a probed cluster port is taken before the node binds it. */
const START_ATTEMPTS = 3;

function getJson<T>(url: string): Promise<T> {
  return new Promise((resolve, reject) => {
    // No keep-alive agent: a node may be killed at any time, and idle sockets must not linger.
    const req = get(url, { agent: false, timeout: 2_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${body}`));
        else {
          try {
            resolve(JSON.parse(body) as T);
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        }
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
  });
}

function monitorUrl(node: NatsServer): string {
  const url = node.monitorUrl;
  if (url === undefined) throw new Error(`node ${node.serverName}: no monitoring endpoint`);
  return url;
}

/**
 * A cluster of nats-servers on 127.0.0.1 for tests of failover: by default 3 nodes with clustered
 * JetStream, so that a stream with `num_replicas: 3` survives the loss of one node.
 *
 * Each node is a {@link NatsServer}: `cluster.nodes[1].kill()` and `.restart()` crash and bring back
 * one node on the same ports (route ports are fixed up front for that). Nodes run with the HTTP
 * monitoring endpoint on, which `waitForReady()` reads.
 *
 * @example
 * await using cluster = await NatsCluster.start();
 * const nc = await connect({ servers: cluster.urls });
 */
export class NatsCluster implements AsyncDisposable {
  /** Cluster name, shared by all nodes. */
  readonly name: string;
  /** The nodes, in start order; node `i` is named `<name>-n<i>`. */
  readonly nodes: readonly NatsServer[];
  readonly #jetstream: boolean;
  readonly #readyTimeout: number;

  private constructor(name: string, nodes: NatsServer[], jetstream: boolean, readyTimeout: number) {
    this.name = name;
    this.nodes = nodes;
    this.#jetstream = jetstream;
    this.#readyTimeout = readyTimeout;
  }

  /** Starts the nodes and resolves once the cluster has formed (see {@link NatsCluster.waitForReady}). */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const { size = 3, jetstream = true, readyTimeout = 15_000 } = options;
    if (!Number.isInteger(size) || size < 1) {
      throw new NatsServerError(
        "NATS_SERVER_INVALID_OPTION",
        `NatsCluster option size ${size}: must be an integer >= 1`,
      );
    }
    const name = options.name ?? uniqueName("cluster");
    for (let attempt = 1; ; attempt++) {
      try {
        const cluster = new NatsCluster(
          name,
          await NatsCluster.#startNodes(name, size, jetstream, options),
          jetstream,
          readyTimeout,
        );
        try {
          await cluster.waitForReady();
        } catch (err) {
          await cluster.stop();
          throw err;
        }
        return cluster;
      } catch (err) {
        if (!(err instanceof NatsServerError && err.retryable) || attempt >= START_ATTEMPTS) throw err;
      }
    }
  }

  static async #startNodes(
    name: string,
    size: number,
    jetstream: boolean,
    options: NatsClusterOptions,
  ): Promise<NatsServer[]> {
    // Route ports are fixed before start (every node lists every route, and a restarted node must
    // keep its port); client and monitoring ports are picked by the servers and kept on restart.
    const routePorts = await freePorts(size);
    const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
    const started = await Promise.allSettled(
      routePorts.map((port, i) =>
        NatsServer.start({
          jetstream,
          config: options.config,
          serverName: `${name}-n${i}`,
          monitor: true,
          cluster: { name, port, routes },
          bin: options.bin,
          debug: options.debug,
          docker: false,
        }),
      ),
    );
    const nodes = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    const failed = started.find((result) => result.status === "rejected");
    if (failed) {
      await Promise.all(nodes.map((node) => node.stop()));
      throw failed.reason;
    }
    return nodes;
  }

  /** Client URLs of all nodes, for nats.js `connect({ servers: cluster.urls })`. */
  get urls(): string[] {
    return this.nodes.map((node) => node.url);
  }

  /**
   * Client URLs of all nodes joined with commas, the form of `NATS_URL` and the nats CLI's `--server`.
   * nats.js does not split this string: give it {@link NatsCluster.urls}.
   */
  get servers(): string {
    return this.urls.join(",");
  }

  /** The node that is the JetStream meta leader now, as its running peers see it; undefined if none. */
  async metaLeader(): Promise<NatsServer | undefined> {
    for (const node of this.nodes.filter((n) => n.running)) {
      try {
        const leader = (await getJson<Jsz>(`${monitorUrl(node)}/jsz`)).meta_cluster?.leader;
        if (leader) return this.nodes.find((n) => n.serverName === leader);
      } catch {
        // This node is going down or not ready: ask the next one.
      }
    }
    return undefined;
  }

  /**
   * Resolves once the running nodes form a cluster: every running node has routes to all the others,
   * and with JetStream all of them agree on a meta leader that sees each of them as current. Call it
   * after restarting a node to wait until it has rejoined.
   */
  async waitForReady(options: { timeout?: number } = {}): Promise<void> {
    const timeout = options.timeout ?? this.#readyTimeout;
    await waitFor(() => this.#formed(), {
      timeout,
      interval: 50,
      message: `cluster ${this.name} to form (${this.#jetstream ? "JetStream meta leader, all nodes current" : "all routes up"})`,
    });
  }

  async #formed(): Promise<boolean> {
    const running = this.nodes.filter((node) => node.running);
    const expectedRoutes = running.length - 1;
    const routez = await Promise.all(
      running.map((node) => getJson<{ num_routes?: number }>(`${monitorUrl(node)}/routez`)),
    );
    routez.forEach((r, i) => {
      if ((r.num_routes ?? 0) < expectedRoutes) {
        throw new Error(`${running[i]?.serverName}: ${r.num_routes ?? 0} of ${expectedRoutes} routes up`);
      }
    });
    if (!this.#jetstream) return true;
    const jsz = await Promise.all(running.map((node) => getJson<Jsz>(`${monitorUrl(node)}/jsz`)));
    const leaders = new Set(jsz.map((j) => j.meta_cluster?.leader ?? ""));
    const [leader] = leaders;
    if (leaders.size !== 1 || !leader) {
      throw new Error(
        `no agreed JetStream meta leader yet (nodes see: ${[...leaders].map((l) => l || "none").join(", ")})`,
      );
    }
    const leaderIndex = running.findIndex((node) => node.serverName === leader);
    const leaderView = jsz[leaderIndex]?.meta_cluster;
    if (!leaderView) throw new Error(`meta leader ${leader} is not one of the running nodes`);
    for (const node of running) {
      if (node.serverName === leader) continue;
      const peer = leaderView.replicas?.find((r) => r.name === node.serverName);
      if (!peer?.current)
        throw new Error(`meta leader ${leader} does not see ${node.serverName} as current yet`);
    }
    return true;
  }

  /** Stops every node and removes their files. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }

  /** Same as `stop()`, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
