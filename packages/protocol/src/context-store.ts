import type { KV } from "@nats-io/kv";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { getJson, storedKeys } from "./kv-json.js";
import { AgentContext } from "./records.js";
import { contextKey, type CodingNames } from "./subjects.js";
import { supportsPerKeyTTL } from "./topology.js";

/** Options of {@link AgentContextStore.set}. */
export interface ContextSetOptions {
  /** Time to live in milliseconds; readers treat the entry as absent afterwards. */
  ttl?: number;
}

/**
 * Agent context in the state KV bucket, keyed `<agentID>.<key>`.
 *
 * A TTL is honoured on read on every server (the entry carries `expiresAt`); on servers with
 * per-key TTL (2.11+) the server also removes the entry.
 */
export class AgentContextStore {
  private constructor(
    readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly bucket: string,
    private readonly perKeyTTL: boolean,
    private readonly now: () => number,
  ) {}

  /** Opens the state bucket of a namespace. */
  static async open(
    nc: NatsConnection,
    names: CodingNames,
    now: () => number = Date.now,
  ): Promise<AgentContextStore> {
    const kv = await new Kvm(nc).open(names.kv.state);
    let perKeyTTL = false;
    if (supportsPerKeyTTL(nc)) {
      const status = await kv.status();
      perKeyTTL = (status.streamInfo.config as { allow_msg_ttl?: boolean }).allow_msg_ttl === true;
    }
    return new AgentContextStore(kv, nc, names.kv.state, perKeyTTL, now);
  }

  /** The live entry, or undefined when absent or expired. */
  async get(agentID: string, key: string): Promise<AgentContext | undefined> {
    const entry = await getJson(this.kv, contextKey(agentID, key), AgentContext);
    if (!entry) return undefined;
    const { expiresAt } = entry.value;
    if (expiresAt !== undefined && Date.parse(expiresAt) <= this.now()) return undefined;
    return entry.value;
  }

  /** Stores a value (any JSON) for an agent, optionally with a TTL. */
  async set(
    agentID: string,
    key: string,
    value: unknown,
    options: ContextSetOptions = {},
  ): Promise<AgentContext> {
    const now = this.now();
    const record: AgentContext = {
      agentID,
      key,
      value,
      updated: new Date(now).toISOString(),
      ...(options.ttl !== undefined
        ? { ttl: options.ttl, expiresAt: new Date(now + options.ttl).toISOString() }
        : {}),
    };
    const k = contextKey(agentID, key);
    const data = JSON.stringify(AgentContext.parse(record));
    if (options.ttl !== undefined && this.perKeyTTL) {
      // Per-key TTL is only accepted on create(): clear the key first so create succeeds.
      await this.kv.purge(k);
      await this.kv.create(k, data, `${Math.max(1, Math.ceil(options.ttl / 1000))}s`);
    } else {
      await this.kv.put(k, data);
    }
    return record;
  }

  /** Removes an entry. */
  async delete(agentID: string, key: string): Promise<void> {
    await this.kv.delete(contextKey(agentID, key));
  }

  /** Live entries, optionally of one agent. */
  async list(agentID?: string): Promise<AgentContext[]> {
    const filter = agentID === undefined ? ">" : `${contextKey(agentID, "x").slice(0, -1)}>`;
    const out: AgentContext[] = [];
    for (const key of await storedKeys(this.nc, this.bucket, filter)) {
      const [agent, name] = key.split(".");
      if (agent === undefined || name === undefined) continue;
      const entry = await this.get(agent, name).catch(() => undefined);
      if (entry) out.push(entry);
    }
    return out;
  }
}
