/** Environment variables whose values are secrets wherever they are set. */
export const SECRET_ENV_VARS = [
  "ANTHROPIC_API_KEY",
  "OPENAI_API_KEY",
  "OPENROUTER_API_KEY",
  "GEMINI_API_KEY",
  "GOOGLE_API_KEY",
  "GROQ_API_KEY",
  "MISTRAL_API_KEY",
  "GIT_TOKEN",
  "GITHUB_TOKEN",
  "GH_TOKEN",
  "NATS_TOKEN",
  "NATS_PASSWORD",
  "OPENCODE_SERVER_PASSWORD",
];

const MASK = "[REDACTED]";

/** Patterns of well-known credential shapes, scrubbed even when the value was never registered. */
const PATTERNS: RegExp[] = [
  /\b(gh[pousr]_[A-Za-z0-9]{20,})\b/g,
  /\b(github_pat_[A-Za-z0-9_]{20,})\b/g,
  /\b(sk-[A-Za-z0-9_-]{20,})\b/g,
  /\b(glpat-[A-Za-z0-9_-]{20,})\b/g,
  // user:password@ in URLs
  /(?<=[a-z][a-z0-9+.-]*:\/\/)([^/@\s:]+:[^/@\s]+)(?=@)/gi,
];

/**
 * Scrubs secrets from every string that leaves the process: registered values (tokens handed to
 * git, API keys from the environment) and well-known credential shapes.
 */
export class SecretRedactor {
  private readonly values = new Set<string>();

  constructor(initial: Iterable<string> = []) {
    for (const value of initial) this.add(value);
  }

  /** Adds the secret values of the well-known environment variables. */
  addFromEnv(env: NodeJS.ProcessEnv = process.env, extraNames: string[] = []): this {
    for (const name of [...SECRET_ENV_VARS, ...extraNames]) {
      const value = env[name];
      if (value) this.add(value);
    }
    return this;
  }

  /** Registers a secret; values shorter than 6 characters are ignored to avoid mangling text. */
  add(value: string | undefined): void {
    if (value && value.length >= 6) this.values.add(value);
  }

  /** Returns `text` with every secret replaced by a mask. */
  redact(text: string): string {
    let out = text;
    for (const value of this.values) {
      if (out.includes(value)) out = out.split(value).join(MASK);
    }
    for (const pattern of PATTERNS) out = out.replace(pattern, MASK);
    return out;
  }

  /** Deep-copies a JSON-like value with every string redacted. */
  redactValue<T>(value: T): T {
    if (typeof value === "string") return this.redact(value) as T;
    if (Array.isArray(value)) return value.map((v: unknown) => this.redactValue(v)) as T;
    if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.redactValue(v);
      return out as T;
    }
    return value;
  }
}
