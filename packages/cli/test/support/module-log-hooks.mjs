// Module customization hooks (node:module register): every module URL the process loads is
// appended to the file named by MODULE_LOG. Loaded with `node --import ./module-log.mjs`.
import { appendFileSync } from "node:fs";

export async function load(url, context, nextLoad) {
  if (process.env.MODULE_LOG) appendFileSync(process.env.MODULE_LOG, `${url}\n`);
  return nextLoad(url, context);
}
