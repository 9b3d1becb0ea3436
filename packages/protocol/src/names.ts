import { ValidationError } from "./errors.js";

/** Longest name accepted for a token that becomes part of a subject, bucket, key or path. */
export const MAX_NAME_LENGTH = 128;

/** Longest artifact file name accepted. */
export const MAX_FILE_NAME_LENGTH = 200;

const TOKEN_CHARS = /^[A-Za-z0-9_-]+$/;
const FILE_NAME_CHARS = /^[A-Za-z0-9_.=+-]+$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const WHITESPACE = /\s/;

function describe(value: string): string {
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  return JSON.stringify(shown);
}

function fail(field: string, value: string, rule: string): never {
  throw new ValidationError(field, rule, `${field} ${describe(value)}: ${rule}`);
}

/** The reason `value` breaks a naming rule common to tokens and file names, or undefined. */
function commonProblem(value: string, max: number): string | undefined {
  if (value.length === 0) return "must not be empty";
  if (value.length > max) return `must be at most ${max} characters (got ${value.length})`;
  if (CONTROL.test(value)) return "must not contain control characters";
  if (WHITESPACE.test(value)) return "must not contain whitespace";
  if (value.includes("..")) return 'must not contain ".."';
  if (value.includes("/") || value.includes("\\")) return 'must not contain "/" or "\\"';
  if (value.includes("*") || value.includes(">")) return 'must not contain the wildcards "*" or ">"';
  if (value.startsWith("-")) return 'must not start with "-"';
  return undefined;
}

/**
 * Checks a name that becomes a subject token, a bucket or key part and a directory name
 * (org, taskID, session, workspace, agent id, worker id) and returns it.
 *
 * @throws ValidationError naming `field` and the rule that was broken.
 */
export function validateName(field: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new ValidationError(field, "must be a string", `${field}: must be a string`);
  }
  const problem = commonProblem(value, MAX_NAME_LENGTH);
  if (problem) fail(field, value, problem);
  if (value.includes(".")) fail(field, value, 'must not contain "."');
  if (!TOKEN_CHARS.test(value)) {
    fail(field, value, 'must contain only letters, digits, "_" and "-"');
  }
  return value;
}

/**
 * Checks an artifact file name (a single path segment such as `report.txt`) and returns it.
 *
 * @throws ValidationError naming `field` and the rule that was broken.
 */
export function validateFileName(field: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new ValidationError(field, "must be a string", `${field}: must be a string`);
  }
  const problem = commonProblem(value, MAX_FILE_NAME_LENGTH);
  if (problem) fail(field, value, problem);
  if (value.startsWith(".")) fail(field, value, 'must not start with "."');
  if (!FILE_NAME_CHARS.test(value)) {
    fail(field, value, 'must contain only letters, digits, ".", "_", "-", "+" and "="');
  }
  return value;
}

/** Whether `value` is a valid name (see {@link validateName}). */
export function isValidName(value: unknown): value is string {
  try {
    validateName("name", value);
    return true;
  } catch {
    return false;
  }
}

/** The first rule `value` breaks as a name, or undefined when it is valid. For zod refinements. */
export function nameProblem(value: string): string | undefined {
  try {
    validateName("name", value);
    return undefined;
  } catch (err) {
    return err instanceof ValidationError ? err.rule : String(err);
  }
}

/** The first rule `value` breaks as a file name, or undefined when it is valid. For zod refinements. */
export function fileNameProblem(value: string): string | undefined {
  try {
    validateFileName("name", value);
    return undefined;
  } catch (err) {
    return err instanceof ValidationError ? err.rule : String(err);
  }
}
