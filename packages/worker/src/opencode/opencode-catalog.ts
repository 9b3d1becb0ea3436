import type { OpencodeClient } from "@opencode-ai/sdk/v2";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import type { ResolvedTask } from "@station-coding/protocol";
import type { Logger } from "pino";

/** Names listed in an error at most; the rest are counted. */
const LISTED = 20;

/** The task names a provider or model that OpenCode does not have. */
export class ModelNotFoundError extends StationError {
  override name = "ModelNotFoundError";
  constructor(message: string) {
    super(ErrorCodes.ModelNotFound, message, { retryable: false });
  }
}

/** The task names an agent that OpenCode does not have. */
export class AgentNotFoundError extends StationError {
  override name = "AgentNotFoundError";
  constructor(message: string) {
    super(ErrorCodes.AgentNotFound, message, { retryable: false });
  }
}

/**
 * Checks the task's `model` and `agent` against what the OpenCode server offers for `directory`
 * (its config and the workspace's own `opencode.json` count), before a prompt is sent: OpenCode
 * itself answers an unknown one with session errors (one with its stack trace) and a turn that
 * never ends. A catalogue that cannot be read is logged and the prompt goes ahead.
 *
 * @throws ModelNotFoundError or AgentNotFoundError naming what was not found and what is available.
 */
export async function checkModelAndAgent(
  client: OpencodeClient,
  task: Pick<ResolvedTask, "model" | "agent">,
  directory: string,
  log: Logger,
): Promise<void> {
  if (task.model) {
    const { providerID, modelID } = task.model;
    const res = await client.config
      .providers({ directory })
      .catch((err: unknown) => ({ data: undefined, error: err }));
    if (!res.data) {
      log.warn({ err: res.error }, "could not list opencode's providers; sending the prompt unchecked");
    } else {
      const provider = res.data.providers.find((p) => p.id === providerID);
      const wanted = `model ${JSON.stringify(`${providerID}/${modelID}`)}`;
      if (!provider) {
        const available = listed(res.data.providers.map((p) => p.id));
        throw new ModelNotFoundError(
          `${wanted}: OpenCode has no provider ${JSON.stringify(providerID)}; providers: ${available}`,
        );
      }
      if (!Object.hasOwn(provider.models, modelID)) {
        const available = listed(Object.keys(provider.models).map((id) => `${providerID}/${id}`));
        throw new ModelNotFoundError(
          `${wanted}: not found in OpenCode; models of ${providerID}: ${available}`,
        );
      }
    }
  }
  if (task.agent !== undefined) {
    const res = await client.app
      .agents({ directory })
      .catch((err: unknown) => ({ data: undefined, error: err }));
    if (!res.data) {
      log.warn({ err: res.error }, "could not list opencode's agents; sending the prompt unchecked");
    } else if (!res.data.some((a) => a.name === task.agent)) {
      const available = listed(res.data.filter((a) => a.hidden !== true).map((a) => a.name));
      throw new AgentNotFoundError(
        `agent ${JSON.stringify(task.agent)}: not found in OpenCode; agents: ${available}`,
      );
    }
  }
}

function listed(names: string[]): string {
  if (names.length === 0) return "none";
  const shown = names.slice(0, LISTED).join(", ");
  return names.length > LISTED ? `${shown} (and ${names.length - LISTED} more)` : shown;
}
