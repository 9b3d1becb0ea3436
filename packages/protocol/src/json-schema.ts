import { z } from "zod";
import { ArtifactRef } from "./artifacts.js";
import { StreamEvent } from "./events.js";
import { AgentContext, CancelRequest, DeadLetter, SessionState, WorkerPresence } from "./records.js";
import { TaskResult } from "./result.js";
import { Task } from "./task.js";

const SCHEMA_BASE = "https://station-coding.dev/schema";

/**
 * What Task's superRefine checks, in JSON Schema terms (zod cannot export a refinement): a `code`
 * task, the default op, needs a prompt with more than white space; a `commit` task needs `commit`.
 * `properties` alone holds when `op` is absent, so the first rule covers the default op too.
 * json-schema.test.ts checks that a JSON Schema validator and zod agree on every case.
 */
const TASK_OP_RULES = [
  {
    if: { properties: { op: { const: "code" } } },
    then: { required: ["prompt"], properties: { prompt: { pattern: "\\S" } } },
  },
  {
    if: { properties: { op: { const: "commit" } }, required: ["op"] },
    then: { required: ["commit"] },
  },
];

/** The published JSON Schema documents, by file name, generated from the zod schemas. */
export function jsonSchemas(): Record<string, Record<string, unknown>> {
  const documents: [string, z.ZodType, "input" | "output", string][] = [
    ["task", Task, "input", "A coding task published on station.coding.task or org.<org>.coding.task"],
    ["stream-event", StreamEvent, "output", "A live task event on <root>.stream.<taskID>"],
    ["result", TaskResult, "output", "A task result on <root>.result.<taskID>"],
    ["session-state", SessionState, "output", "A session record in the coding-sessions KV bucket"],
    ["agent-context", AgentContext, "output", "An agent context entry in the coding-state KV bucket"],
    ["cancel-request", CancelRequest, "input", "A cancel request on <root>.cancel.<taskID>"],
    ["artifact-ref", ArtifactRef, "output", "A reference to an object in the coding-artifacts store"],
    ["worker-presence", WorkerPresence, "output", "A worker heartbeat in the coding-workers KV bucket"],
    ["dead-letter", DeadLetter, "output", "A dead letter on <root>.dlq.<taskID>"],
  ];
  const out: Record<string, Record<string, unknown>> = {};
  for (const [name, schema, io, description] of documents) {
    out[`${name}.schema.json`] = {
      ...z.toJSONSchema(schema, { io, unrepresentable: "any" }),
      ...(schema === Task ? { allOf: TASK_OP_RULES } : {}),
      $id: `${SCHEMA_BASE}/${name}.schema.json`,
      title: name,
      description,
    };
  }
  return out;
}
