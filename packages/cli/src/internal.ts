/**
 * @packageDocumentation
 * `@station-coding/cli/internal`: the CLI's parts one by one (output formatting, following a task,
 * the tenancy files of `org`), for its own tests and the repo-level suites. Not a stable API;
 * scripts and users import `@station-coding/cli`.
 */

export { StationConfig, loadConfig, namesFromConfig } from "./config.js";
export { ExitCode } from "./exit-codes.js";
export {
  describeEvent,
  eventJson,
  exitCodeFor,
  formatBytes,
  formatCost,
  formatEvent,
  formatResult,
  formatStatus,
  formatStatusLine,
  formatTable,
  formatTokens,
  oneLine,
  resultJson,
  summarizeArgs,
} from "./output.js";
export { offlineModelUrl, providerKeys } from "./offline-model.js";
export { CLI_VERSION, buildProgram, main } from "./program.js";
export { StatusLine } from "./status-line.js";
export { CANCEL_WAIT_MS, TaskPrinter, followTask } from "./task-follow.js";
export {
  DEFAULT_LIMITS,
  OPERATOR_ACCOUNT,
  SINGLE_TENANT_PASSWORD_VARS,
  accountName,
  operatorApiPrefix,
  operatorExports,
  orgWorkerInbox,
  renderAccountsConfig,
  renderSingleTenantUsers,
} from "./tenancy/accounts-config.js";
export { ORG_ROLES, ROLE_PURPOSE, rolePermissions } from "./tenancy/permissions.js";
export { TENANCY_FILES, TenancyStore } from "./tenancy/tenancy-store.js";

export type { FollowProgress } from "./output.js";
export type { StatusLineOutput } from "./status-line.js";
export type { FollowOptions } from "./task-follow.js";
export type { OrgLimits, OrgRecord, TenancyState } from "./tenancy/accounts-config.js";
export type { Grant, OrgRole, RolePermissions } from "./tenancy/permissions.js";
export type { WrittenUser } from "./tenancy/tenancy-store.js";
