import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { jsonSchemas } from "@station-coding/protocol";

const dir = new URL("../schema/", import.meta.url);

describe("committed JSON Schema files", () => {
  it("match the zod schemas (run `npm run schemas` after changing a schema)", () => {
    const generated = jsonSchemas();
    const committed = readdirSync(dir).filter((f) => f.endsWith(".schema.json"));
    expect(committed.sort()).toEqual(Object.keys(generated).sort());
    for (const [file, schema] of Object.entries(generated)) {
      const onDisk: unknown = JSON.parse(readFileSync(new URL(file, dir), "utf8"));
      expect(onDisk, `${file} drifted from the zod schema`).toEqual(schema);
    }
  });

  it("describes the minimal task", () => {
    const task = jsonSchemas()["task.schema.json"] as { required: string[] };
    expect(task.required).toEqual(["taskID"]);
  });
});
