import { expect } from "vitest";
import { ValidationError } from "@station-coding/protocol";

/** The ValidationError `fn` throws (the test fails when it throws something else or nothing). */
export function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error("expected a ValidationError");
}
