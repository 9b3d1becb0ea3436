import { z } from "zod";
import { ErrorCodes, ValidationError } from "./errors.js";
import { fileNameProblem, nameProblem } from "./names.js";

/** A name that becomes a subject token, bucket or key part or a directory (see `validateName`). */
export const Name = z
  .string()
  .superRefine((value, ctx) => {
    const problem = nameProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  // Also in the JSON Schema; the refinement above gives the specific message first.
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$/, 'must contain only letters, digits, "_" and "-"');

/** A single-segment artifact file name (see `validateFileName`). */
export const FileName = z
  .string()
  .superRefine((value, ctx) => {
    const problem = fileNameProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .regex(/^[A-Za-z0-9_=+-][A-Za-z0-9_.=+-]{0,199}$/, "must be a plain file name");

/** An ISO 8601 timestamp string. */
export const Timestamp = z.string();

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current = input;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "";
  const text = JSON.stringify(value) ?? typeof value;
  return ` ${text.length > 60 ? `${text.slice(0, 60)}…` : text}`;
}

/**
 * Parses `input` with `schema`, turning the first problem into a ValidationError whose message
 * names the field, the value and the rule, e.g. `session.name "a.b": must not contain "."`.
 */
export function parseWith<S extends z.ZodType>(
  schema: S,
  input: unknown,
  what: string,
  code: (typeof ErrorCodes)[keyof typeof ErrorCodes] = ErrorCodes.InvalidTask,
): z.output<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue?.path ?? [];
  const field = path.length > 0 ? path.map(String).join(".") : what;
  const message = issue?.message ?? "invalid";
  const value = issue?.code === "invalid_type" ? "" : describeValue(valueAt(input, path));
  const error = new ValidationError(field, message, `${field}${value}: ${message}`, code);
  (error as { cause?: unknown }).cause = parsed.error;
  throw error;
}
