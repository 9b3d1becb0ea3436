import { describe, expect, it } from "vitest";
import {
  CancelRequest,
  MAX_CANCEL_REASON_LENGTH,
  MAX_METADATA_BYTES,
  MAX_METADATA_ENTRIES,
  MAX_PROMPT_BYTES,
  MAX_TIMEOUT_MS,
  cutUtf8,
  jsonSchemas,
  parseTask,
  parseWith,
  utf8Length,
} from "@station-coding/protocol";
import { validationError } from "./support/validation.js";

const task = (extra: Record<string, unknown>) => ({ taskID: "t1", prompt: "hi", ...extra });

describe("UTF-8 length and cutting", () => {
  const samples = [
    "",
    "plain",
    "é",
    "naïve café",
    "日本語のテキスト",
    "emoji 😀 and 𝄞",
    "lone \ud800 surrogate",
  ];

  it.each(samples)("counts %j as Buffer.byteLength does", (text) => {
    expect(utf8Length(text)).toBe(Buffer.byteLength(text));
  });

  it("cuts to at most the byte limit, marker included, never splitting a character", () => {
    const text = "ab😀cdé日本語".repeat(50);
    for (const max of [0, 5, 13, 14, 15, 16, 40, 101, 333]) {
      const cut = cutUtf8(text, max);
      expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(max);
      expect(cut).not.toContain("\ufffd");
      const kept = cut.endsWith("…[truncated]") ? cut.slice(0, -"…[truncated]".length) : cut;
      expect(text.startsWith(kept)).toBe(true);
    }
    expect(cutUtf8("short", 100)).toBe("short");
  });
});

describe("limits on fields echoed into events and results", () => {
  it("accepts a timeout of 2^31-1 ms and rejects one more, naming the field and the limit", () => {
    expect(parseTask(task({ timeout: MAX_TIMEOUT_MS })).timeout).toBe(MAX_TIMEOUT_MS);
    const err = validationError(() => parseTask(task({ timeout: MAX_TIMEOUT_MS + 1 })));
    expect(err.field).toBe("timeout");
    expect(err.message).toBe("timeout 2147483648: must be at most 2147483647 ms (about 24.8 days)");
  });

  it("rejects a prompt over MAX_PROMPT_BYTES in UTF-8 though under MAX_PROMPT_LENGTH characters", () => {
    const prompt = "é".repeat(MAX_PROMPT_BYTES / 2 + 1);
    const err = validationError(() => parseTask(task({ prompt })));
    expect(err.field).toBe("prompt");
    expect(err.message).toContain(`must be at most ${MAX_PROMPT_BYTES} bytes in UTF-8`);
    expect(parseTask(task({ prompt: "é".repeat(MAX_PROMPT_BYTES / 2) })).prompt).toHaveLength(
      MAX_PROMPT_BYTES / 2,
    );
  });

  it("bounds metadata: entries, key and value lengths, and its size as JSON", () => {
    const many = Object.fromEntries(
      Array.from({ length: MAX_METADATA_ENTRIES + 1 }, (_, i) => [`k${i}`, "v"]),
    );
    expect(validationError(() => parseTask(task({ metadata: many }))).message).toMatch(
      new RegExp(`^metadata \\{"k0":.*: must have at most ${MAX_METADATA_ENTRIES} entries \\(has 65\\)$`),
    );
    const longKey = validationError(() => parseTask(task({ metadata: { ["k".repeat(129)]: "v" } })));
    expect(longKey.field).toBe(`metadata.${"k".repeat(129)}`);
    expect(longKey.message).toContain("key must be at most 128 characters");
    const longValue = validationError(() => parseTask(task({ metadata: { a: "v".repeat(4097) } })));
    expect(longValue.field).toBe("metadata.a");
    expect(longValue.message).toContain("must be at most 4096 characters");
    const big = Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`k${i}`, "v".repeat(4000)]));
    expect(validationError(() => parseTask(task({ metadata: big }))).message).toMatch(
      new RegExp(`^metadata \\{.*: must be at most ${MAX_METADATA_BYTES} bytes as JSON \\(is \\d+\\)$`),
    );
    expect(parseTask(task({ metadata: { team: "core", ticket: "ABC-1" } })).metadata).toEqual({
      team: "core",
      ticket: "ABC-1",
    });
  });

  it("bounds agent and model names, commit messages and git arguments", () => {
    expect(validationError(() => parseTask(task({ agent: "a".repeat(257) }))).field).toBe("agent");
    expect(
      validationError(() => parseTask(task({ model: { providerID: "p", modelID: "m".repeat(257) } }))).field,
    ).toBe("model.modelID");
    expect(
      validationError(() => parseTask(task({ op: "commit", commit: { message: "m".repeat(16 * 1024 + 1) } })))
        .field,
    ).toBe("commit.message");
    const url = `https://example.com/${"x".repeat(4096)}.git`;
    expect(validationError(() => parseTask(task({ workspace: { git: { url } } }))).field).toBe(
      "workspace.git.url",
    );
  });

  it("rejects a cancel reason over MAX_CANCEL_REASON_LENGTH, naming the field", () => {
    const reason = "r".repeat(MAX_CANCEL_REASON_LENGTH + 1);
    const err = validationError(() => parseWith(CancelRequest, { taskID: "t1", reason }, "cancel"));
    expect(err.field).toBe("reason");
    expect(err.message).toContain(`must be at most ${MAX_CANCEL_REASON_LENGTH} characters`);
    expect(parseWith(CancelRequest, { taskID: "t1", reason: "enough" }, "cancel").reason).toBe("enough");
  });

  it("documents the limits in the JSON Schema", () => {
    const schemas = jsonSchemas();
    const props = (name: string) =>
      (schemas[name] as { properties: Record<string, Record<string, unknown>> }).properties;
    const taskProps = props("task.schema.json");
    expect(taskProps.timeout).toMatchObject({ maximum: MAX_TIMEOUT_MS });
    expect(taskProps.prompt).toMatchObject({ maxLength: 512 * 1024 });
    expect(taskProps.prompt?.description).toContain(`${MAX_PROMPT_BYTES} bytes`);
    expect(taskProps.metadata).toMatchObject({
      maxProperties: MAX_METADATA_ENTRIES,
      propertyNames: { maxLength: 128 },
      additionalProperties: { type: "string", maxLength: 4096 },
    });
    expect(taskProps.metadata?.description).toContain(`${MAX_METADATA_BYTES} bytes as JSON`);
    expect(taskProps.agent).toMatchObject({ maxLength: 256 });
    expect(props("cancel-request.schema.json").reason).toMatchObject({ maxLength: MAX_CANCEL_REASON_LENGTH });
  });
});
