import { describe, expect, it } from "vitest";
import { safeJson, withoutUndefined } from "@station-coding/protocol";

describe("safeJson", () => {
  it("parses JSON from a message body or a string", () => {
    expect(safeJson(new TextEncoder().encode('{"taskID":"t1"}'))).toEqual({ taskID: "t1" });
    expect(safeJson("[1,2]")).toEqual([1, 2]);
  });

  it("is undefined for anything that is not JSON, without throwing", () => {
    expect(safeJson(new Uint8Array([0xff, 0xfe]))).toBeUndefined();
    expect(safeJson("{not json")).toBeUndefined();
    expect(safeJson("")).toBeUndefined();
  });
});

describe("withoutUndefined", () => {
  it("drops the undefined entries and keeps every other value, falsy ones too", () => {
    expect(withoutUndefined({ a: 1, b: undefined, c: null, d: 0, e: "", f: false })).toEqual({
      a: 1,
      c: null,
      d: 0,
      e: "",
      f: false,
    });
    expect(Object.keys(withoutUndefined({ gone: undefined }))).toEqual([]);
  });
});
