import type { KV } from "@nats-io/kv";
import {
  ErrorCodes,
  SessionLock,
  StationError,
  TaskLease,
  decodeEntry,
  isCasConflict,
} from "@station-coding/protocol";
import type { LeaseState } from "@station-coding/protocol";

/** The lease on a task that this worker holds, with the revision to compare-and-set against. */
export interface HeldLease {
  key: string;
  revision: number;
  value: TaskLease;
}

/** Outcome of {@link Leases.acquire}. */
export type AcquireOutcome =
  | { kind: "run"; lease: HeldLease }
  | { kind: "busy"; holder: string | undefined }
  | { kind: "done" }
  | { kind: "exhausted"; attempts: number; lastError: string | undefined; generation: number };

/** A lease that another worker took over, or that could not be renewed. */
export class LeaseLostError extends StationError {
  override name = "LeaseLostError";
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(ErrorCodes.LeaseLost, message, { ...options, retryable: true });
  }
}

/**
 * Task leases and session locks in the leases KV bucket, all written with compare-and-set.
 *
 * A lease says which worker runs a task and until when; a worker that cannot renew it (paused,
 * partitioned, late) learns it lost the task and neither publishes a result nor acks.
 */
export class Leases {
  constructor(
    private readonly kv: KV,
    private readonly workerID: string,
    private readonly ttl: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Decides whether this worker may run the task now and, if so, records a new run (attempt).
   * A running lease that expired belongs to a dead worker: that run counts as an attempt. A
   * `publishing` lease that expired belongs to a worker that died while publishing the result:
   * when `resultStored(holder)` finds that worker's result stored, the task is done; otherwise it
   * runs again.
   *
   * A live lease held by this worker's own id counts as abandoned and is taken over at once: the
   * caller must know that it does not run the task now (TaskRunner registers every delivery before
   * it calls this, so a second delivery of a running task never gets here). Such a lease is left by
   * a run of this worker that ended without settling it (NATS failed while it was handled).
   */
  async acquire(
    taskID: string,
    streamSeq: number,
    maxAttempts: number,
    resultStored: (holder: string | undefined) => Promise<boolean> = () => Promise.resolve(false),
  ): Promise<AcquireOutcome> {
    const key = `task.${taskID}`;
    if (maxAttempts > 0) {
      // A first delivery finds no lease: create it at once (compare-and-set on "no such key", so
      // two workers cannot both succeed) instead of reading first. A lease that exists (a
      // redelivery, a duplicate) fails the create and is read and decided on below.
      const now = this.now();
      const value: TaskLease = {
        taskID,
        state: "running",
        attempts: 1,
        generation: 0,
        workerID: this.workerID,
        streamSeq,
        expiresAt: now + this.ttl,
        startedAt: new Date(now).toISOString(),
      };
      try {
        const revision = await this.kv.create(key, JSON.stringify(value));
        return { kind: "run", lease: { key, revision, value } };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    for (;;) {
      const entry = await this.kv.get(key);
      const current = decodeEntry(entry, TaskLease)?.value;
      const now = this.now();
      if (current?.state === "done") return { kind: "done" };
      const live = (current?.expiresAt ?? 0) > now;
      if (
        (current?.state === "running" || current?.state === "publishing") &&
        live &&
        current.workerID !== this.workerID
      ) {
        return { kind: "busy", holder: current.workerID };
      }
      if (entry && current?.state === "publishing" && (await resultStored(current.workerID))) {
        try {
          await this.kv.update(key, JSON.stringify({ ...current, state: "done" }), entry.revision);
          return { kind: "done" };
        } catch (err) {
          if (!isCasConflict(err)) throw err;
          continue;
        }
      }
      const attempts = current?.attempts ?? 0;
      const generation = current?.generation ?? 0;
      if (attempts >= maxAttempts) {
        return { kind: "exhausted", attempts, lastError: current?.lastError, generation };
      }
      const value: TaskLease = {
        taskID,
        state: "running",
        attempts: attempts + 1,
        generation,
        workerID: this.workerID,
        streamSeq,
        expiresAt: now + this.ttl,
        startedAt: new Date(now).toISOString(),
        ...(current?.lastError !== undefined ? { lastError: current.lastError } : {}),
      };
      try {
        const data = JSON.stringify(value);
        const revision = entry
          ? await this.kv.update(key, data, entry.revision)
          : await this.kv.create(key, data);
        return { kind: "run", lease: { key, revision, value } };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
  }

  /** The lease record of a task as stored now, or undefined when there is none. */
  async current(taskID: string): Promise<TaskLease | undefined> {
    return decodeEntry(await this.kv.get(`task.${taskID}`), TaskLease)?.value;
  }

  /** Records that a task is finished for good without a held lease (it ran out of attempts). */
  async markDone(taskID: string, lastError: string): Promise<void> {
    const key = `task.${taskID}`;
    const current = decodeEntry(await this.kv.get(key), TaskLease)?.value;
    const value: TaskLease = { ...(current ?? { taskID, attempts: 0 }), taskID, state: "done", lastError };
    await this.kv.put(key, JSON.stringify(value));
  }

  /** Extends the lease; throws {@link LeaseLostError} when another writer changed it. */
  async renew(lease: HeldLease): Promise<void> {
    await this.write(lease, { ...lease.value, expiresAt: this.now() + this.ttl });
  }

  /**
   * Moves the lease to another state: `publishing` (still held), or a final or waiting one.
   * `released` gives the attempt back (shutdown).
   * @throws LeaseLostError when another worker owns the task now.
   */
  async settle(lease: HeldLease, state: LeaseState, lastError?: string): Promise<void> {
    const value: TaskLease = {
      ...lease.value,
      state,
      attempts: state === "released" ? Math.max(0, lease.value.attempts - 1) : lease.value.attempts,
      // A worker publishing its result still holds the task; any other state lets go of it.
      expiresAt: state === "publishing" ? this.now() + this.ttl : this.now(),
      ...(lastError !== undefined ? { lastError } : {}),
    };
    await this.write(lease, value);
  }

  private async write(lease: HeldLease, value: TaskLease): Promise<void> {
    try {
      lease.revision = await this.kv.update(lease.key, JSON.stringify(value), lease.revision);
      lease.value = value;
    } catch (err) {
      if (isCasConflict(err)) {
        throw new LeaseLostError(`lease on task ${lease.value.taskID} was taken over by another worker`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /**
   * Takes the lock of a session for a task; undefined when another live task holds it. With
   * `fresh` (a session that was most likely never locked, e.g. named after its first task) the
   * lock is written without reading first, on the condition that the key has never been written
   * (not even deleted: `first` says this worked, so no task of the session ever held it); when it
   * has, that write fails and the lock is read and decided on as usual.
   */
  async lockSession(session: string, taskID: string, fresh = false): Promise<HeldLock | undefined> {
    const key = `session.${session}`;
    if (fresh) {
      const value: SessionLock = { taskID, workerID: this.workerID, expiresAt: this.now() + this.ttl };
      try {
        const revision = await this.kv.put(key, JSON.stringify(value), { previousSeq: 0 });
        return { key, revision, value, first: true };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
    for (;;) {
      const entry = await this.kv.get(key);
      const current = decodeEntry(entry, SessionLock)?.value;
      const now = this.now();
      if (current && current.expiresAt > now && current.taskID !== taskID) return undefined;
      const value: SessionLock = { taskID, workerID: this.workerID, expiresAt: now + this.ttl };
      try {
        const data = JSON.stringify(value);
        const revision = entry
          ? await this.kv.update(key, data, entry.revision)
          : await this.kv.create(key, data);
        return { key, revision, value };
      } catch (err) {
        if (!isCasConflict(err)) throw err;
      }
    }
  }

  /** Extends a session lock. */
  async renewSession(lock: HeldLock): Promise<void> {
    const value = { ...lock.value, expiresAt: this.now() + this.ttl };
    try {
      lock.revision = await this.kv.update(lock.key, JSON.stringify(value), lock.revision);
      lock.value = value;
    } catch (err) {
      if (isCasConflict(err)) throw new LeaseLostError(`lock on session ${lock.key.slice(8)} was taken over`);
      throw err;
    }
  }

  /** Releases a session lock if it is still ours; a lock released already costs nothing. */
  async unlockSession(lock: HeldLock): Promise<void> {
    if (lock.released) return;
    try {
      await this.kv.delete(lock.key, { previousSeq: lock.revision });
    } catch (err) {
      if (!isCasConflict(err)) throw err;
    }
    lock.released = true;
  }
}

/** A session lock this worker holds. */
export interface HeldLock {
  key: string;
  revision: number;
  value: SessionLock;
  /** Set once {@link Leases.unlockSession} let it go (or found it taken over). */
  released?: boolean;
  /** The first lock of the session ever: no task of it held one before. */
  first?: boolean;
}
