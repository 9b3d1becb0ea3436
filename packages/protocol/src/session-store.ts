import type { KV } from "@nats-io/kv";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { casUpdate, getJson, storedKeys } from "./kv-json.js";
import type { Versioned } from "./kv-json.js";
import { validateName } from "./names.js";
import { SessionState } from "./records.js";
import type { CodingNames } from "./subjects.js";

/** Station coding sessions in the sessions KV bucket, keyed by session name. */
export class SessionStore {
  private constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly bucket: string,
  ) {}

  /** Opens the sessions bucket of a namespace (the bucket must exist: see `ensureTopology`). */
  static async open(nc: NatsConnection, names: CodingNames): Promise<SessionStore> {
    return new SessionStore(await new Kvm(nc).open(names.kv.sessions), nc, names.kv.sessions);
  }

  /** The session and its revision, or undefined. */
  async get(name: string): Promise<Versioned<SessionState> | undefined> {
    return getJson(this.kv, validateName("session", name), SessionState);
  }

  /**
   * Applies `next` with compare-and-set, so concurrent writers never lose an update. `known` is
   * the record as {@link get} returned it a moment ago: the first write goes against it without
   * reading again (on a conflict the record is read afresh).
   */
  async update(
    name: string,
    next: (current: SessionState | undefined) => SessionState,
    known?: { entry: Versioned<SessionState> | undefined },
  ): Promise<Versioned<SessionState>> {
    return casUpdate(this.kv, validateName("session", name), SessionState, next, 20, known);
  }

  /** Every stored session. */
  async list(): Promise<SessionState[]> {
    const sessions: SessionState[] = [];
    for (const key of await storedKeys(this.nc, this.bucket)) {
      const entry = await getJson(this.kv, key, SessionState).catch(() => undefined);
      if (entry) sessions.push(entry.value);
    }
    return sessions.sort((a, b) => a.sessionName.localeCompare(b.sessionName));
  }

  /** Deletes a session record (the workspace is the worker's business). */
  async delete(name: string): Promise<void> {
    await this.kv.delete(validateName("session", name));
  }
}
