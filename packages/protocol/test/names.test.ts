import { describe, expect, it } from "vitest";
import { ValidationError, parseDuration, validateFileName, validateName } from "@station-coding/protocol";

describe("validateName", () => {
  it("accepts plain names", () => {
    for (const ok of ["acme", "task-1", "a_b", "A1", "x".repeat(128), "_private"]) {
      expect(validateName("org", ok)).toBe(ok);
    }
  });

  it.each([
    ["a.b", 'org "a.b": must not contain "."'],
    ["", 'org "": must not be empty'],
    ["a\tb", 'org "a\\tb": must not contain control characters'],
    ["../x", 'org "../x": must not contain ".."'],
  ])("rejects %j with a message naming the field and rule", (value, message) => {
    expect(() => validateName("org", value)).toThrow(message);
  });

  it("rejects non-strings with a typed error", () => {
    try {
      validateName("taskID", 42);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe("taskID");
      expect((err as ValidationError).code).toBe("INVALID_NAME");
      expect((err as ValidationError).retryable).toBe(false);
    }
  });
});

describe("validateFileName", () => {
  it("accepts file names with extensions and rejects path tricks", () => {
    expect(validateFileName("file", "changes.patch")).toBe("changes.patch");
    for (const bad of ["..", "../a", "a/b", ".env", "-rf", "a\nb", "a b", "*.txt"]) {
      expect(() => validateFileName("file", bad)).toThrow(/^file /);
    }
  });
});

describe("parseDuration", () => {
  it("accepts milliseconds and unit strings", () => {
    expect(parseDuration("timeout", 1500)).toBe(1500);
    expect(parseDuration("timeout", "1500")).toBe(1500);
    expect(parseDuration("timeout", "30s")).toBe(30_000);
    expect(parseDuration("timeout", "10m")).toBe(600_000);
    expect(parseDuration("timeout", "1.5h")).toBe(5_400_000);
    expect(parseDuration("timeout", "250ms")).toBe(250);
  });

  it("names the option in the error", () => {
    expect(() => parseDuration("timeout", "ten minutes")).toThrow(
      'timeout "ten minutes": must be a duration such as "30s", "10m", "2h" or milliseconds',
    );
    expect(() => parseDuration("ackWait", -1)).toThrow(/^ackWait -1/);
  });
});
