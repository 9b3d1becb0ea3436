// Writes test/support/openapi-types.ts: TypeScript types of the gateway's OpenAPI document
// (openapi-typescript), for the typed client in test/openapi.test.ts, which checks the file is
// current. Run: npm run openapi-types
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { openApiTypes } from "../test/support/openapi-document.js";

const target = fileURLToPath(new URL("../test/support/openapi-types.ts", import.meta.url));
await writeFile(target, await openApiTypes());
process.stdout.write(`wrote ${target}\n`);
