import type { NatsConnection } from "@nats-io/transport-node";
import { PermissionViolationError } from "@nats-io/transport-node";
import type { Logger } from "pino";

type Listener<T> = (value: T) => void;

/**
 * Watches a connection's status events: logs disconnects and reconnects, and hands permission
 * violations and reconnects to whoever waits on them (nats.js reports a denied pull or publish
 * without a reply only here, so a waiter would otherwise hang).
 */
export class ConnectionMonitor {
  private readonly permissionListeners = new Set<Listener<PermissionViolationError>>();
  private readonly reconnectListeners = new Set<Listener<void>>();
  private readonly iterator: AsyncIterable<unknown> & { stop?: () => void };
  private readonly done: Promise<void>;

  constructor(nc: NatsConnection, logger: Logger) {
    const status = nc.status();
    this.iterator = status;
    this.done = (async () => {
      try {
        for await (const s of status) {
          switch (s.type) {
            case "error":
              if (s.error instanceof PermissionViolationError) {
                logger.warn(
                  { operation: s.error.operation, subject: s.error.subject },
                  "nats permission violation",
                );
                for (const listener of this.permissionListeners) listener(s.error);
              } else {
                logger.warn({ err: s.error }, "nats server error");
              }
              break;
            case "disconnect":
              logger.warn({ server: s.server }, "nats connection lost; reconnecting");
              break;
            case "reconnect":
              logger.info({ server: s.server }, "nats connection restored");
              for (const listener of this.reconnectListeners) listener();
              break;
            default:
              break;
          }
        }
      } catch (err) {
        logger.warn({ err }, "nats status monitor stopped");
      }
    })();
  }

  /** Calls `listener` on every permission violation until the returned function is called. */
  onPermissionError(listener: Listener<PermissionViolationError>): () => void {
    this.permissionListeners.add(listener);
    return () => this.permissionListeners.delete(listener);
  }

  /** Calls `listener` after every reconnect until the returned function is called. */
  onReconnect(listener: Listener<void>): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.permissionListeners.clear();
    this.reconnectListeners.clear();
    this.iterator.stop?.();
    await this.done;
  }
}
