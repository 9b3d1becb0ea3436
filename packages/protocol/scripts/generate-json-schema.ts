// Writes the JSON Schema files under packages/protocol/schema from the zod schemas.
// Run with `npm run schemas`; a test fails when the committed files drift from the schemas.
import { mkdir, writeFile } from "node:fs/promises";
import { jsonSchemas } from "../src/json-schema.js";

const dir = new URL("../schema/", import.meta.url);
await mkdir(dir, { recursive: true });
for (const [file, schema] of Object.entries(jsonSchemas())) {
  await writeFile(new URL(file, dir), `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote schema/${file}`);
}
