import type { SSEStreamingApi } from "hono/streaming";
import { HttpProblem } from "./problem.js";

/** Limits of the gateway's long-lived requests (station.yaml `gateway.streams`). */
export interface StreamLimits {
  /** Open event streams and result long-polls one token may hold at once. */
  perToken: number;
  /** Open event streams and result long-polls of the whole gateway. */
  total: number;
  /** A client that has not taken a write for this long (ms) is cut off. */
  stallMs: number;
}

/** Defaults of {@link StreamLimits}. */
export const DEFAULT_STREAM_LIMITS: StreamLimits = { perToken: 32, total: 1000, stallMs: 30_000 };

/**
 * Counts the open streams (SSE and result long-polls) per token and in all, so that one caller
 * cannot hold every socket and follower of the gateway: past its share a token is answered 429,
 * past the gateway's 503, both with Retry-After.
 */
export class StreamSlots {
  private readonly byToken = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: Pick<StreamLimits, "perToken" | "total">) {}

  /** Takes a slot for `token` or throws the problem that names the limit; the returned function gives it back (once). */
  acquire(token: string): () => void {
    const mine = this.byToken.get(token) ?? 0;
    if (mine >= this.limits.perToken) {
      throw new HttpProblem(
        429,
        "too-many-streams",
        `token ${token} holds ${mine} open streams, its limit (gateway.streams.perToken); close one and retry`,
        {},
        { "Retry-After": "5" },
      );
    }
    if (this.total >= this.limits.total) {
      throw new HttpProblem(
        503,
        "too-many-streams",
        `the gateway holds ${this.total} open streams, its limit (gateway.streams.total); retry later`,
        {},
        { "Retry-After": "5" },
      );
    }
    this.byToken.set(token, mine + 1);
    this.total += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.byToken.get(token) ?? 1) - 1;
      if (left === 0) this.byToken.delete(token);
      else this.byToken.set(token, left);
    };
  }

  /** Open streams of `token` (all tokens without one). */
  open(token?: string): number {
    return token === undefined ? this.total : (this.byToken.get(token) ?? 0);
  }
}

/**
 * The writes of one SSE response, watched: a client that stops reading blocks its writes (the
 * socket's buffers are full), and one whose oldest write has waited `stallMs` is cut off: its
 * stream and its socket are closed, so that it holds neither a follower nor buffered events.
 * Heartbeat comments go out every `heartbeatMs` when nothing else was written.
 */
export class WatchedStream {
  /** Start times of the writes not yet taken, oldest first (writes complete in order). */
  private readonly pending: number[] = [];
  private lastWrite = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly stream: SSEStreamingApi,
    options: { stallMs: number; heartbeatMs: number; onStall: () => void },
  ) {
    const tick = Math.max(10, Math.min(options.heartbeatMs, options.stallMs / 2));
    this.timer = setInterval(() => {
      const now = performance.now();
      const oldest = this.pending[0];
      if (oldest !== undefined && now - oldest >= options.stallMs) {
        this.close();
        options.onStall();
        return;
      }
      if (this.pending.length === 0 && now - this.lastWrite >= options.heartbeatMs) {
        void this.write(() => this.stream.write(": heartbeat\n\n"));
      }
    }, tick);
  }

  /** Writes an event (or comment) through the watch. */
  write(op: () => Promise<unknown>): Promise<void> {
    const started = performance.now();
    this.pending.push(started);
    return op().then(
      () => this.settle(),
      () => this.settle(),
    );
  }

  writeSSE(message: { id?: string; event: string; data: string }): Promise<void> {
    return this.write(() => this.stream.writeSSE(message));
  }

  /** Stops the watch (the response is ending). */
  stop(): void {
    clearInterval(this.timer);
  }

  private settle(): void {
    this.pending.shift();
    this.lastWrite = performance.now();
  }

  private close(): void {
    this.stop();
    this.stream.abort();
  }
}
