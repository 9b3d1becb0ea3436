import { fileURLToPath } from "node:url";

const at = (path: string) => fileURLToPath(new URL(`./packages/${path}`, import.meta.url));

/**
 * Tests run against source, not built output: every entry of every workspace package (the ones in
 * its package.json `exports`) is aliased to its source file, the same map as the `paths` of
 * tsconfig.test-base.json. Exact matches, so that a subpath never falls through to its package.
 */
export const sourceAliases = Object.entries({
  "@station-coding/protocol": at("protocol/src/index.ts"),
  "@station-coding/telemetry": at("telemetry/src/index.ts"),
  "@station-coding/telemetry/metrics": at("telemetry/src/metrics-entry.ts"),
  "@station-coding/testkit": at("testkit/src/index.ts"),
  "@station-coding/testkit/worker": at("testkit/src/worker/index.ts"),
  "@station-coding/testkit/browser": at("testkit/src/browser/index.ts"),
  "@station-coding/worker": at("worker/src/index.ts"),
  "@station-coding/worker/internal": at("worker/src/internal.ts"),
  "@station-coding/dispatcher": at("dispatcher/src/index.ts"),
  "@station-coding/gateway": at("gateway/src/index.ts"),
  "@station-coding/gateway/config": at("gateway/src/config.ts"),
  "@station-coding/cli": at("cli/src/index.ts"),
  "@station-coding/cli/internal": at("cli/src/internal.ts"),
}).map(([name, replacement]) => ({ find: new RegExp(`^${name}$`), replacement }));
