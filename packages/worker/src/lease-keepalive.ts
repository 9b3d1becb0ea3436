import type { Logger } from "pino";
import type { TaskDeliveries } from "./delivery.js";
import type { HeldLease, HeldLock, Leases } from "./lease.js";
import { LeaseLostError } from "./lease.js";

/** What a {@link LeaseKeepAlive} keeps alive, and whom it tells when the lease is lost. */
export interface KeepAliveOptions {
  leases: Leases;
  lease: HeldLease;
  /** The session's lock, renewed with the lease. */
  lock: HeldLock | undefined;
  /** The task's deliveries, marked in progress at each renewal (their ack_wait restarts). */
  delivery: TaskDeliveries;
  /** The lease's length (the consumer's ack_wait), in ms: it is renewed every third of it. */
  ttl: number;
  /** Called when another worker took the lease over: the task must stop. */
  onLost: (err: LeaseLostError) => void;
  logger: Logger;
}

/**
 * Keeps a running task's lease, its session's lock and its deliveries alive from a timer that is
 * independent of the task, so that a task busy in the driver never looks dead. A lease another
 * worker took over is reported through `onLost`; any other failure is logged and tried again at
 * the next tick.
 */
export class LeaseKeepAlive {
  private renewing: Promise<unknown> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(o: KeepAliveOptions) {
    this.timer = setInterval(
      () => {
        o.delivery.working();
        this.renewing = Promise.all([
          o.leases.renew(o.lease),
          o.lock ? o.leases.renewSession(o.lock) : undefined,
        ]).catch((err: unknown) => {
          if (err instanceof LeaseLostError) o.onLost(err);
          else o.logger.warn({ err }, "lease renewal failed; will try again");
        });
      },
      Math.max(250, Math.floor(o.ttl / 3)),
    );
  }

  /**
   * Stops renewing, once a renewal in flight is over: it would make the next compare-and-set of the
   * lease fail. Calling it again is harmless.
   */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.renewing;
  }
}
