/**
 * Fallback for machines without a nats-server binary: the official NATS image run through
 * testcontainers, which is an optional peer (imported only when installed; never a dependency).
 */
import { connect as tcpConnect } from "node:net";
import { setTimeout as delay } from "node:timers/promises";

import { freePorts } from "./free-port.js";
import { NatsServerError } from "./nats-server-error.js";

// The subset of the testcontainers API used here, typed locally so the package stays optional.
interface StartedContainer {
  getId(): string;
  getHost(): string;
  getMappedPort(port: number): number;
  stop(options?: { timeout?: number; remove?: boolean; removeVolumes?: boolean }): Promise<unknown>;
  restart(options?: { timeout?: number }): Promise<void>;
}
interface ContainerBuilder {
  withCommand(command: string[]): ContainerBuilder;
  withExposedPorts(...ports: { container: number; host: number }[]): ContainerBuilder;
  withCopyContentToContainer(contents: { content: string; target: string }[]): ContainerBuilder;
  withWaitStrategy(strategy: unknown): ContainerBuilder;
  withStartupTimeout(ms: number): ContainerBuilder;
  start(): Promise<StartedContainer>;
}
interface RuntimeClient {
  container: {
    getById(id: string): {
      kill(options?: { signal?: string }): Promise<unknown>;
      restart(options?: { t?: number }): Promise<unknown>;
    };
  };
}
interface Testcontainers {
  GenericContainer: new (image: string) => ContainerBuilder;
  Wait: { forLogMessage(message: string | RegExp, times?: number): unknown };
  getContainerRuntimeClient(): Promise<RuntimeClient>;
}

/** Image used by the fallback (env NATS_SERVER_IMAGE overrides it): the one docker-compose.yaml runs. */
const DEFAULT_IMAGE = "nats:2.11-alpine";
const CONFIG_PATH = "/etc/nats/testkit.conf";
/** Client and monitoring ports inside the container. */
export const CONTAINER_CLIENT_PORT = 4222;
export const CONTAINER_MONITOR_PORT = 8222;
/** JetStream store dir inside the container. */
export const CONTAINER_STORE_DIR = "/data";

/** testcontainers, when it is installed and finds a Docker engine; otherwise why not. */
export async function loadDockerFallback(): Promise<
  { available: true; fallback: DockerFallback } | { available: false; reason: string }
> {
  let mod: Testcontainers;
  try {
    // A computed specifier keeps TypeScript and bundlers from requiring the optional package.
    const specifier = "testcontainers";
    mod = (await import(/* @vite-ignore */ specifier)) as Testcontainers;
  } catch {
    return { available: false, reason: "the testcontainers package is not installed" };
  }
  let client: RuntimeClient;
  try {
    client = await mod.getContainerRuntimeClient();
  } catch (err) {
    return {
      available: false,
      reason: `no Docker engine is reachable (${err instanceof Error ? err.message : String(err)})`,
    };
  }
  return { available: true, fallback: { testcontainers: mod, client } };
}

/** What {@link NatsContainer.start} needs: the loaded module and its Docker client. */
export interface DockerFallback {
  testcontainers: Testcontainers;
  client: RuntimeClient;
}

/** A nats-server in a Docker container, on fixed host ports so that a restart keeps them. */
export class NatsContainer {
  readonly host: string;
  readonly port: number;
  readonly monitorPort: number | undefined;
  readonly #container: StartedContainer;
  readonly #client: RuntimeClient;
  #stopped = false;

  private constructor(container: StartedContainer, client: RuntimeClient, monitor: boolean) {
    this.#container = container;
    this.#client = client;
    this.host = container.getHost();
    this.port = container.getMappedPort(CONTAINER_CLIENT_PORT);
    this.monitorPort = monitor ? container.getMappedPort(CONTAINER_MONITOR_PORT) : undefined;
  }

  /** Starts the image with `config` (which must listen on the container ports) and waits until ready. */
  static async start(
    { testcontainers, client }: DockerFallback,
    options: { config: string; port: number; monitor: boolean; startTimeout: number },
  ): Promise<NatsContainer> {
    const [probedClient, probedMonitor] = await freePorts(2);
    if (probedClient === undefined || probedMonitor === undefined)
      throw new Error("freePorts returned too few");
    const ports = [
      { container: CONTAINER_CLIENT_PORT, host: options.port > 0 ? options.port : probedClient },
    ];
    if (options.monitor) ports.push({ container: CONTAINER_MONITOR_PORT, host: probedMonitor });
    const image = process.env.NATS_SERVER_IMAGE ?? DEFAULT_IMAGE;
    try {
      const container = await new testcontainers.GenericContainer(image)
        .withCopyContentToContainer([{ content: options.config, target: CONFIG_PATH }])
        .withCommand(["-c", CONFIG_PATH])
        .withExposedPorts(...ports)
        .withWaitStrategy(testcontainers.Wait.forLogMessage(/Server is ready/))
        .withStartupTimeout(options.startTimeout)
        .start();
      return new NatsContainer(container, client, options.monitor);
    } catch (err) {
      throw new NatsServerError(
        "NATS_SERVER_EXITED",
        `nats-server container (${image}) did not start: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
  }

  /** Stops and removes the container (and its store). */
  async stop(timeoutMs: number): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#container.stop({ timeout: timeoutMs, remove: true, removeVolumes: true });
  }

  /**
   * Restarts the container in place: same ports, same store; resolves once the new server greets a
   * client. Also starts it again after kill().
   */
  async restart(timeoutMs: number, startTimeout: number): Promise<void> {
    // Not testcontainers' restart(): its wait for "Server is ready" in the logs since the new start
    // missed the line now and then on Docker 20.10 (and then removed the container).
    await this.#client.container.getById(this.#container.getId()).restart({ t: Math.ceil(timeoutMs / 1000) });
    await waitForGreeting(this.host, this.port, startTimeout);
  }

  /** SIGKILLs the server (the container stays, with its store, for restart()). */
  async kill(): Promise<void> {
    await this.#client.container.getById(this.#container.getId()).kill({ signal: "SIGKILL" });
  }
}

/** Resolves once a nats-server on host:port sends its INFO greeting; throws after `timeout` ms. */
async function waitForGreeting(host: string, port: number, timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const greeted = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect({ host, port });
      const done = (ok: boolean): void => {
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1_000, () => done(false));
      socket.once("data", (chunk: Buffer) => done(chunk.toString().startsWith("INFO ")));
      socket.once("error", () => done(false));
      socket.once("close", () => done(false));
    });
    if (greeted) return;
    if (Date.now() >= deadline) {
      throw new NatsServerError(
        "NATS_SERVER_START_TIMEOUT",
        `nats-server container at ${host}:${port} did not answer within ${timeout}ms of its restart`,
      );
    }
    await delay(100);
  }
}
