import { isAbsolute } from "node:path";
import { GitRefusedError } from "./git-errors.js";

/** Which repository URLs a worker may clone from and push to. */
export interface UrlPolicyOptions {
  /** Allow `file://` URLs and absolute local paths (tests, air-gapped mirrors). @default false */
  allowLocalRepos?: boolean;
  /** Allow plain `http://` URLs (credentials would cross the network in clear). @default false */
  allowHttp?: boolean;
  /**
   * Hosts every org may use; `*.example.com` matches subdomains. Omit to allow any host.
   * @default undefined (any host)
   */
  allowedHosts?: string[];
  /** Per-org host allow-lists; an org listed here uses its own list instead of `allowedHosts`. */
  allowedHostsByOrg?: Record<string, string[]>;
}

/** How git reaches a repository. */
export type GitTransport = "https" | "http" | "ssh" | "file";

/** A URL that passed the policy. */
export interface CheckedGitUrl {
  /** The URL as given (it carries no credentials, or it would have been refused). */
  url: string;
  transport: GitTransport;
  /** Lower-cased host; undefined for local repositories. */
  host?: string;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/;
const IPV6 = /^\[[0-9A-Fa-f:.]+\]$/;
const SCP_LIKE = /^(?:([^@/:]+)@)?([^/:]+):(.*)$/;

function refuse(field: string, value: string, rule: string): never {
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  throw new GitRefusedError(field, `${field} ${JSON.stringify(shown)}: ${rule}`);
}

/** Masks the credentials of a URL for a message (the URL itself is refused anyway). */
function withoutUserinfo(value: string): string {
  return value.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/@]*@/, "$1***@");
}

/**
 * Checks a repository URL against the policy and returns how git will reach it.
 *
 * Allowed by default: `https://host/path`, `ssh://[user@]host/path` and scp-like `user@host:path`.
 * Refused: remote-helper syntax (`ext::…`, `fd::…`), `git://`, anything starting with `-`, control
 * characters or whitespace, embedded credentials, and, unless configured, `http://`, `file://` and
 * local paths, and hosts outside the org's allow-list.
 *
 * @throws GitRefusedError (GIT_REFUSED, not retryable) naming `field`.
 */
export function checkGitUrl(
  url: string,
  policy: UrlPolicyOptions = {},
  org?: string,
  field = "workspace.git.url",
): CheckedGitUrl {
  if (url.length === 0) refuse(field, url, "must not be empty");
  if (url.length > 2048) refuse(field, url.slice(0, 80), "must be at most 2048 characters");
  if (url.startsWith("-")) refuse(field, url, 'must not start with "-" (it would be read as a git option)');
  const helper = /^([A-Za-z0-9+.-]+)::/.exec(url);
  if (helper) {
    refuse(field, url, `remote-helper URLs ("${helper[1]}::") are not allowed: use an https or ssh URL`);
  }
  if (CONTROL.test(url)) refuse(field, url, "must not contain control characters");
  if (/\s/.test(url)) refuse(field, url, "must not contain whitespace");

  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme !== undefined) return checkSchemeUrl(url, scheme, policy, org, field);

  const scp = SCP_LIKE.exec(url);
  if (scp && !isAbsolute(url) && !url.startsWith(".")) {
    const [, user, host = "", path = ""] = scp;
    if (user !== undefined && (user.startsWith("-") || user.length === 0)) {
      refuse(field, url, 'the user name must not be empty or start with "-"');
    }
    if (/^[^/]*@/.test(path)) {
      refuse(field, "(hidden)", "must not embed credentials (user:password@host)");
    }
    checkHost(field, url, host, policy, org);
    if (path.length === 0 || path.startsWith("-")) {
      refuse(field, url, 'the repository path must not be empty or start with "-"');
    }
    return { url, transport: "ssh", host: host.toLowerCase() };
  }

  if (!policy.allowLocalRepos) {
    refuse(
      field,
      url,
      "local paths are not allowed: use an https or ssh URL (or allow them: worker --allow-local-repos, STATION_GIT_ALLOW_LOCAL_REPOS, option git.allowLocalRepos)",
    );
  }
  if (!isAbsolute(url)) refuse(field, url, "a local repository must be an absolute path");
  return { url, transport: "file" };
}

function checkSchemeUrl(
  url: string,
  scheme: string,
  policy: UrlPolicyOptions,
  org: string | undefined,
  field: string,
): CheckedGitUrl {
  let transport: GitTransport;
  switch (scheme) {
    case "https":
      transport = "https";
      break;
    case "http":
      if (!policy.allowHttp) {
        refuse(
          field,
          withoutUserinfo(url),
          "http:// is not allowed: use https (or allow it: worker --allow-http-repos, STATION_GIT_ALLOW_HTTP, option git.allowHttp)",
        );
      }
      transport = "http";
      break;
    case "ssh":
    case "git+ssh":
    case "ssh+git":
      transport = "ssh";
      break;
    case "file":
      if (!policy.allowLocalRepos) {
        refuse(
          field,
          url,
          "file:// URLs are not allowed: use an https or ssh URL (or allow them: worker --allow-local-repos, STATION_GIT_ALLOW_LOCAL_REPOS, option git.allowLocalRepos)",
        );
      }
      return { url, transport: "file" };
    default:
      refuse(field, withoutUserinfo(url), `the scheme "${scheme}://" is not allowed: use https or ssh`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    refuse(field, withoutUserinfo(url), "is not a valid URL");
  }
  if (parsed.password !== "") {
    refuse(
      field,
      withoutUserinfo(url),
      "must not embed credentials: put the token in workspace.git.token or workspace.git.tokenFromKV, " +
        "or configure the worker's git.tokenEnv",
    );
  }
  if (parsed.username !== "" && transport !== "ssh") {
    refuse(
      field,
      withoutUserinfo(url),
      "must not embed a user name or token: put the token in workspace.git.token or " +
        "workspace.git.tokenFromKV, or configure the worker's git.tokenEnv",
    );
  }
  if (parsed.username.startsWith("-")) refuse(field, url, 'the user name must not start with "-"');
  checkHost(field, url, parsed.hostname, policy, org);
  if (parsed.pathname === "" || parsed.pathname === "/") {
    refuse(field, url, "must name a repository path");
  }
  if (parsed.search !== "" || parsed.hash !== "") {
    refuse(field, url, "must not have a query or fragment");
  }
  return { url, transport, host: parsed.hostname.toLowerCase() };
}

function checkHost(
  field: string,
  url: string,
  host: string,
  policy: UrlPolicyOptions,
  org: string | undefined,
): void {
  if (host.length === 0) refuse(field, url, "must name a host");
  if (!HOST.test(host) && !IPV6.test(host)) {
    refuse(field, url, `the host ${JSON.stringify(host)} is not a valid host name`);
  }
  const list = (org !== undefined ? policy.allowedHostsByOrg?.[org] : undefined) ?? policy.allowedHosts;
  if (list === undefined) return;
  const lower = host.toLowerCase();
  const allowed = list.some((entry) => {
    const e = entry.toLowerCase();
    return e.startsWith("*.") ? lower.endsWith(e.slice(1)) : lower === e;
  });
  if (!allowed) {
    refuse(
      field,
      url,
      `the host ${JSON.stringify(lower)} is not in the allowed hosts${org !== undefined ? ` of org ${org}` : ""} (${list.join(", ") || "none"}; worker --allowed-git-hosts, STATION_GIT_ALLOWED_HOSTS, option git.allowedHosts)`,
    );
  }
}

/**
 * Checks a branch or ref name by the rules of `git check-ref-format --branch`, plus a plain commit
 * hash for refs: no leading `-`, no `..`, `@{`, control characters, spaces or `~^:?*[\`, no
 * component starting with `.` or ending with `.lock`, no trailing `/` or `.`.
 *
 * @throws GitRefusedError naming `field`.
 */
export function checkRefName(field: string, value: string): string {
  if (value.length === 0) refuse(field, value, "must not be empty");
  if (value.length > 255) refuse(field, value, "must be at most 255 characters");
  if (value.startsWith("-")) refuse(field, value, 'must not start with "-"');
  if (CONTROL.test(value)) refuse(field, value, "must not contain control characters");
  if (/\s/.test(value)) refuse(field, value, "must not contain spaces");
  if (value.includes("..")) refuse(field, value, 'must not contain ".."');
  if (value.includes("@{")) refuse(field, value, 'must not contain "@{"');
  if (value === "@") refuse(field, value, 'must not be "@"');
  if (/[~^:?*[\\]/.test(value)) refuse(field, value, "must not contain any of ~ ^ : ? * [ \\");
  if (value.startsWith("/") || value.endsWith("/") || value.includes("//")) {
    refuse(field, value, 'must not start or end with "/" or contain "//"');
  }
  if (value.endsWith(".")) refuse(field, value, 'must not end with "."');
  for (const part of value.split("/")) {
    if (part.startsWith(".")) refuse(field, value, 'no path component may start with "."');
    if (part.endsWith(".lock")) refuse(field, value, 'no path component may end with ".lock"');
  }
  return value;
}

/**
 * Checks a remote name (`origin`): letters, digits, `.`, `_` and `-`, not starting with `-`.
 *
 * @throws GitRefusedError naming `field`.
 */
export function checkRemoteName(field: string, value: string): string {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(value) || value.startsWith("-") || value.startsWith(".")) {
    refuse(field, value, 'must be letters, digits, ".", "_" or "-", not starting with "-" or "."');
  }
  return value;
}

/**
 * Checks a sparse-checkout directory: relative, no `..` component, no leading `-`, no control
 * characters or backslashes.
 *
 * @throws GitRefusedError naming `field`.
 */
export function checkSparsePath(field: string, value: string): string {
  if (value.length === 0) refuse(field, value, "must not be empty");
  if (value.startsWith("-")) refuse(field, value, 'must not start with "-"');
  if (CONTROL.test(value)) refuse(field, value, "must not contain control characters");
  if (value.includes("\\")) refuse(field, value, 'must not contain "\\"');
  if (value.startsWith("/") || isAbsolute(value)) refuse(field, value, "must be a relative path");
  if (value.split("/").some((part) => part === ".." || part === ".git")) {
    refuse(field, value, 'must not contain ".." or ".git" components');
  }
  return value;
}
