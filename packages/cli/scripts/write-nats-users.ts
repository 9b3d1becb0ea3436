// Writes deploy/nats/users.conf, the single-tenant users file, from the org tool's role
// permissions (`npm run nats-users`). test/tenancy/single-tenant.test.ts checks it is current.
import { writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { renderSingleTenantUsers } from "../src/tenancy/accounts-config.js";

const target = fileURLToPath(new URL("../../../deploy/nats/users.conf", import.meta.url));
await writeFile(target, renderSingleTenantUsers());
process.stdout.write(`wrote ${target}\n`);
