import type { AgentContext, AgentContextStore } from "@station-coding/protocol";
import { parseDuration, validateName } from "@station-coding/protocol";
import { guarded } from "./errors.js";

/** Options of {@link AgentContextApi.set}. */
export interface AgentContextSetOptions {
  /** Time to live (ms or `"10m"`); the entry reads as absent afterwards. @default no expiry */
  ttl?: number | string;
}

/** Agent context entries of the namespace (the state KV bucket, keyed `<agentID>.<key>`). */
export class AgentContextApi {
  /** @internal */
  constructor(private readonly store: () => Promise<AgentContextStore>) {}

  /** The live entry, or undefined when absent or expired. */
  async get(agentID: string, key: string): Promise<AgentContext | undefined> {
    check(agentID, key);
    return guarded(`reading context ${agentID}.${key}`, async () => (await this.store()).get(agentID, key));
  }

  /** Stores any JSON value for an agent, optionally with a time to live. */
  async set(
    agentID: string,
    key: string,
    value: unknown,
    options: AgentContextSetOptions = {},
  ): Promise<AgentContext> {
    check(agentID, key);
    const ttl = options.ttl === undefined ? undefined : parseDuration("ttl", options.ttl);
    return guarded(`writing context ${agentID}.${key}`, async () =>
      (await this.store()).set(agentID, key, value, ttl !== undefined && ttl > 0 ? { ttl } : {}),
    );
  }

  /** Removes an entry. */
  async delete(agentID: string, key: string): Promise<void> {
    check(agentID, key);
    await guarded(`deleting context ${agentID}.${key}`, async () =>
      (await this.store()).delete(agentID, key),
    );
  }

  /** Live entries, of one agent or of all. */
  async list(agentID?: string): Promise<AgentContext[]> {
    if (agentID !== undefined) validateName("agentID", agentID);
    return guarded(`listing context${agentID !== undefined ? ` of ${agentID}` : ""}`, async () =>
      (await this.store()).list(agentID),
    );
  }
}

function check(agentID: string, key: string): void {
  validateName("agentID", agentID);
  validateName("key", key);
}
