import { readdirSync, readFileSync } from "node:fs";
import { Ajv2020 } from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { Task, jsonSchemas } from "@station-coding/protocol";

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

// The files declare draft 2020-12: a validator of that draft reads them as any client would.
const ajv = new Ajv2020({ allErrors: true, strict: false });
const taskFile = JSON.parse(readFileSync(new URL("task.schema.json", dir), "utf8")) as Record<
  string,
  unknown
>;
const validTask = ajv.compile(taskFile);

describe("task.schema.json read by a JSON Schema validator (ajv, draft 2020-12)", () => {
  const cases: [string, Record<string, unknown>, boolean][] = [
    ["the minimal task", { taskID: "t1", prompt: "add a README" }, true],
    ["a task without a prompt (op defaults to code)", { taskID: "t1" }, false],
    ["a task with an empty prompt", { taskID: "t1", prompt: "" }, false],
    ["a task whose prompt is only white space", { taskID: "t1", prompt: " \n\t " }, false],
    ["a code task without a prompt", { taskID: "t1", op: "code" }, false],
    ["a code task with a prompt", { taskID: "t1", op: "code", prompt: "fix it" }, true],
    ["an open task without a prompt", { taskID: "t1", op: "open" }, true],
    ["a close task without a prompt", { taskID: "t1", op: "close" }, true],
    ["a push task without a prompt", { taskID: "t1", op: "push" }, true],
    ["an open task with an empty prompt", { taskID: "t1", op: "open", prompt: "" }, true],
    ["a commit task without its commit", { taskID: "t1", op: "commit" }, false],
    ["a commit task with its commit", { taskID: "t1", op: "commit", commit: { message: "wip" } }, true],
    ["a task without a taskID", { prompt: "add a README" }, false],
  ];

  it.each(cases)("%s: valid = %s, as zod says", (_name, task, valid) => {
    expect(validTask(task), JSON.stringify(validTask.errors)).toBe(valid);
    expect(Task.safeParse(task).success).toBe(valid);
  });

  it("accepts every task of Station's existing format", () => {
    const { tasks } = JSON.parse(
      readFileSync(new URL("./fixtures/existing-format.json", import.meta.url), "utf8"),
    ) as { tasks: unknown[] };
    expect(tasks.length).toBeGreaterThan(0);
    for (const task of tasks) expect(validTask(task), JSON.stringify(validTask.errors)).toBe(true);
  });

  it("compiles every published schema", () => {
    for (const file of readdirSync(dir).filter((f) => f.endsWith(".schema.json"))) {
      const schema = JSON.parse(readFileSync(new URL(file, dir), "utf8")) as Record<string, unknown>;
      expect(() => new Ajv2020({ strict: false }).compile(schema), file).not.toThrow();
    }
  });
});
