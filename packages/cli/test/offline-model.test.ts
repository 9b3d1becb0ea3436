// When the worker uses the scripted offline model (`--offline-model`, compose's demo profile): only
// without a provider key and without an opencode config, as `demo` decides.
import { describe, expect, it } from "vitest";
import { offlineModelUrl, providerKeys } from "@station-coding/cli/internal";

const URL = "http://model:8080/v1";

describe("offlineModelUrl", () => {
  it("is the URL when no *_API_KEY and no opencode config is set", () => {
    expect(offlineModelUrl(URL, undefined, { PATH: "/usr/bin", ANTHROPIC_API_KEY: " " })).toBe(URL);
  });

  it("is undefined when any provider key is set, or an opencode config, or no URL", () => {
    for (const key of ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENROUTER_API_KEY"]) {
      expect(offlineModelUrl(URL, undefined, { [key]: "sk-1" }), key).toBeUndefined();
    }
    expect(offlineModelUrl(URL, "/etc/station/opencode.json", {})).toBeUndefined();
    expect(offlineModelUrl(undefined, undefined, {})).toBeUndefined();
    expect(offlineModelUrl("", undefined, {})).toBeUndefined();
  });

  it("refuses a value that is not an http(s) URL, whatever else is set", () => {
    expect(() => offlineModelUrl("model:8080", undefined, { OPENAI_API_KEY: "sk-1" })).toThrow(
      '--offline-model "model:8080": must be an http(s) URL',
    );
    expect(() => offlineModelUrl("not a url", undefined, {})).toThrow("must be an http(s) URL");
  });
});

describe("providerKeys", () => {
  it("names the non-empty *_API_KEY variables only", () => {
    expect(
      providerKeys({ OPENAI_API_KEY: "sk", GEMINI_API_KEY: "", API_KEY_FILE: "x", PATH: "/bin" }),
    ).toEqual(["OPENAI_API_KEY"]);
  });
});
