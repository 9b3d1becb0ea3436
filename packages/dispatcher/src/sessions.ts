import type { SessionState, SessionStore } from "@station-coding/protocol";
import { validateName } from "@station-coding/protocol";
import { guarded } from "./errors.js";

/** Station coding sessions of the namespace (the sessions KV bucket). */
export class SessionsApi {
  /** @internal */
  constructor(private readonly store: () => Promise<SessionStore>) {}

  /** Every stored session, by name. */
  async list(): Promise<SessionState[]> {
    return guarded("listing sessions", async () => (await this.store()).list());
  }

  /** One session, or undefined when there is none by that name. */
  async get(name: string): Promise<SessionState | undefined> {
    validateName("session", name);
    return guarded(`reading session ${name}`, async () => (await (await this.store()).get(name))?.value);
  }

  /** Deletes a session record; its workspace is the worker's business (see `codingClose`). */
  async delete(name: string): Promise<void> {
    validateName("session", name);
    await guarded(`deleting session ${name}`, async () => (await this.store()).delete(name));
  }
}
