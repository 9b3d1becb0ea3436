import { ErrorCodes, ValidationError } from "./errors.js";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

/**
 * Parses a duration given as milliseconds (a number or digits) or as `"30s"`, `"10m"`, `"1.5h"`,
 * `"250ms"`, `"2d"`, and returns milliseconds.
 *
 * @throws ValidationError naming `field` when the value is not a non-negative duration.
 */
export function parseDuration(field: string, value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0) {
      throw new ValidationError(
        field,
        "duration",
        `${field} ${value}: must be a non-negative number of milliseconds`,
        ErrorCodes.InvalidConfig,
      );
    }
    return Math.round(value);
  }
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const match = DURATION.exec(text);
  const unit = match?.[2];
  if (!match?.[1] || unit === undefined) {
    throw new ValidationError(
      field,
      "duration",
      `${field} ${JSON.stringify(value)}: must be a duration such as "30s", "10m", "2h" or milliseconds`,
      ErrorCodes.InvalidConfig,
    );
  }
  return Math.round(Number(match[1]) * (UNITS[unit] ?? 1));
}

/** Formats milliseconds for people: `850ms`, `12.3s`, `4m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1_000);
  return `${minutes}m${String(seconds).padStart(2, "0")}s`;
}
