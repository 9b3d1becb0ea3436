import { ErrorCodes } from "@station-coding/protocol";
import { describe, expect, it } from "vitest";
import {
  GitRefusedError,
  checkGitUrl,
  checkRefName,
  checkRemoteName,
  checkSparsePath,
} from "@station-coding/worker/internal";

function refusal(fn: () => unknown): GitRefusedError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GitRefusedError);
    const e = err as GitRefusedError;
    expect(e.code).toBe(ErrorCodes.GitRefused);
    expect(e.retryable).toBe(false);
    return e;
  }
  throw new Error("expected a refusal");
}

describe("git URL policy", () => {
  it("accepts https, ssh and scp-like URLs by default", () => {
    expect(checkGitUrl("https://github.com/acme/app.git")).toEqual({
      url: "https://github.com/acme/app.git",
      transport: "https",
      host: "github.com",
    });
    expect(checkGitUrl("ssh://git@github.com/acme/app.git").transport).toBe("ssh");
    expect(checkGitUrl("git@github.com:acme/app.git")).toMatchObject({
      transport: "ssh",
      host: "github.com",
    });
  });

  it("names the worker flag, the variable and the option that allow what it refuses", () => {
    expect(refusal(() => checkGitUrl("http://git.example.com/a.git")).message).toContain(
      "worker --allow-http-repos, STATION_GIT_ALLOW_HTTP, option git.allowHttp",
    );
    expect(refusal(() => checkGitUrl("file:///srv/repo.git")).message).toContain(
      "worker --allow-local-repos, STATION_GIT_ALLOW_LOCAL_REPOS, option git.allowLocalRepos",
    );
    expect(
      refusal(() => checkGitUrl("https://evil.com/a.git", { allowedHosts: ["github.com"] })).message,
    ).toContain("worker --allowed-git-hosts, STATION_GIT_ALLOWED_HOSTS, option git.allowedHosts");
  });

  it("refuses remote helpers, option-like URLs and other schemes, naming the field", () => {
    const ext = refusal(() => checkGitUrl("ext::sh -c touch% /tmp/pwned"));
    expect(ext.message).toMatch(/^workspace\.git\.url "ext::sh -c touch% \/tmp\/pwned": /);
    expect(ext.field).toBe("workspace.git.url");
    expect(refusal(() => checkGitUrl("ext::ssh")).message).toContain('remote-helper URLs ("ext::")');
    expect(refusal(() => checkGitUrl("fd::3")).message).toContain("remote-helper");
    expect(refusal(() => checkGitUrl("--upload-pack=touch /tmp/x")).message).toContain(
      'must not start with "-"',
    );
    expect(refusal(() => checkGitUrl("git://github.com/acme/app.git")).message).toContain(
      '"git://" is not allowed',
    );
    expect(refusal(() => checkGitUrl("ftp://host/x")).message).toContain("not allowed");
    expect(refusal(() => checkGitUrl("ssh://-oProxyCommand=touch%20x/repo")).message).toMatch(
      /host|user name/,
    );
    expect(refusal(() => checkGitUrl("-oProxyCommand=x:repo")).message).toContain('must not start with "-"');
    expect(refusal(() => checkGitUrl("https://host/a\nb")).message).toContain("control characters");
  });

  it("refuses file:// URLs and local paths unless local repositories are allowed", () => {
    expect(refusal(() => checkGitUrl("file:///srv/repo.git")).message).toContain(
      "file:// URLs are not allowed",
    );
    expect(refusal(() => checkGitUrl("/srv/repo.git")).message).toContain("local paths are not allowed");
    expect(refusal(() => checkGitUrl("../repo")).message).toContain("local paths are not allowed");
    expect(checkGitUrl("file:///srv/repo.git", { allowLocalRepos: true }).transport).toBe("file");
    expect(checkGitUrl("/srv/repo.git", { allowLocalRepos: true }).transport).toBe("file");
    expect(refusal(() => checkGitUrl("repo", { allowLocalRepos: true })).message).toContain("absolute path");
  });

  it("refuses http:// unless allowed", () => {
    expect(refusal(() => checkGitUrl("http://host/x.git")).message).toContain("http:// is not allowed");
    expect(checkGitUrl("http://host/x.git", { allowHttp: true }).transport).toBe("http");
  });

  it("refuses embedded credentials without echoing them, pointing at the token fields", () => {
    const e = refusal(() => checkGitUrl("http://user:s3cretpass@host/x", { allowHttp: true }));
    expect(e.message).toContain("must not embed credentials");
    expect(e.message).toContain("workspace.git.token");
    expect(e.message).not.toContain("s3cretpass");
    const user = refusal(() => checkGitUrl("https://ghp_abcdefabcdef@github.com/x.git"));
    expect(user.message).not.toContain("ghp_abcdefabcdef");
    expect(refusal(() => checkGitUrl("ssh://git:pw123456@host/x")).message).not.toContain("pw123456");
    expect(refusal(() => checkGitUrl("git:pw123456@host:x")).message).not.toContain("pw123456");
  });

  it("applies the host allow-list, per org when one is configured", () => {
    const policy = {
      allowedHosts: ["github.com", "*.corp.example"],
      allowedHostsByOrg: { acme: ["git.acme.io"] },
    };
    expect(checkGitUrl("https://github.com/x.git", policy).host).toBe("github.com");
    expect(checkGitUrl("https://git.corp.example/x.git", policy).host).toBe("git.corp.example");
    expect(refusal(() => checkGitUrl("https://evil.com/x.git", policy)).message).toContain(
      'the host "evil.com" is not in the allowed hosts',
    );
    expect(checkGitUrl("git@git.acme.io:x.git", policy, "acme").host).toBe("git.acme.io");
    expect(refusal(() => checkGitUrl("https://github.com/x.git", policy, "acme")).message).toContain(
      "of org acme",
    );
  });
});

describe("ref, remote and sparse path rules", () => {
  it("accepts ordinary branches, tags and hashes", () => {
    for (const ok of [
      "main",
      "feature/x-1",
      "v1.2.3",
      "refs/pull/1/head",
      "0123456789abcdef0123456789abcdef01234567",
    ]) {
      expect(checkRefName("workspace.git.branch", ok)).toBe(ok);
    }
  });

  it("refuses refs starting with -, containing .., @{, spaces or control characters", () => {
    for (const bad of [
      "-x",
      "--upload-pack=x",
      "a..b",
      "a@{1}",
      "a b",
      "a\tb",
      "a~1",
      "x.lock",
      ".hidden",
      "a/",
      "a:b",
    ]) {
      const e = refusal(() => checkRefName("workspace.git.ref", bad));
      expect(e.message.startsWith(`workspace.git.ref ${JSON.stringify(bad)}: `)).toBe(true);
    }
  });

  it("refuses bad remote names and sparse paths", () => {
    expect(refusal(() => checkRemoteName("push.remote", "--mirror")).field).toBe("push.remote");
    expect(checkRemoteName("push.remote", "origin")).toBe("origin");
    for (const bad of ["../x", "/abs", "-x", "a/../b", ".git/hooks"]) {
      refusal(() => checkSparsePath("workspace.git.sparse[0]", bad));
    }
    expect(checkSparsePath("workspace.git.sparse[0]", "docs/api")).toBe("docs/api");
  });
});
