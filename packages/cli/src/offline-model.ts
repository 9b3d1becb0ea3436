import { UsageError } from "./context.js";

/**
 * The provider key variables set in `env`: every non-empty `*_API_KEY`, the variables OpenCode's
 * providers read (ANTHROPIC_API_KEY, OPENAI_API_KEY, OPENROUTER_API_KEY, ...).
 */
export function providerKeys(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.keys(env).filter((name) => /^[A-Z0-9_]+_API_KEY$/.test(name) && !!env[name]?.trim());
}

/**
 * The worker's `--offline-model` (env STATION_OFFLINE_MODEL_URL): the scripted model's base URL
 * when OpenCode should use it, i.e. when neither a provider key nor an opencode config is set, as
 * `demo` decides; undefined otherwise. A value that is not an http(s) URL is a usage error.
 */
export function offlineModelUrl(
  url: string | undefined,
  opencodeConfig: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  if (url === undefined || url.trim() === "") return undefined;
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // reported below
  }
  if (protocol !== "http:" && protocol !== "https:") {
    throw new UsageError(`--offline-model ${JSON.stringify(url)}: must be an http(s) URL`);
  }
  return opencodeConfig === undefined && providerKeys(env).length === 0 ? url : undefined;
}
