// The HTTP gateway serving two orgs, each over its org's dispatcher credentials: an org token sees
// its org and nothing of the other (404, exactly as for a task that does not exist), with the
// legitimate request beside each refused one.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser } from "playwright-core";
import { Gateway, closeNamespace, hashToken, openNamespace } from "@station-coding/gateway";
import type { GatewayNamespace } from "@station-coding/gateway";
import type { TaskResult } from "@station-coding/protocol";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { script } from "@station-coding/testkit/worker";
import type { TenancyEnv } from "./support/tenancy-env.js";
import { startTenancy } from "./support/tenancy-env.js";

const TOKENS = {
  acme: "acme-operator-7f3a9c",
  acmeViewer: "acme-viewer-2b8d4e",
  globex: "globex-operator-91c5d0",
  admin: "admin-all-orgs-6e1f2a",
} as const;

let env: TenancyEnv;
let gateway: Gateway;
let url: string;
const namespaces: GatewayNamespace[] = [];
beforeAll(async () => {
  env = await startTenancy({ orgs: ["acme", "globex"] });
  for (const org of ["acme", "globex"]) {
    await env.worker([org]);
    namespaces.push(await openNamespace(await env.dispatcher(org)));
  }
  gateway = Gateway.create({
    namespaces,
    tokens: [
      { name: "acme-ci", sha256: hashToken(TOKENS.acme), org: "acme", role: "operator" },
      { name: "acme-dash", sha256: hashToken(TOKENS.acmeViewer), org: "acme", role: "viewer" },
      { name: "globex-ci", sha256: hashToken(TOKENS.globex), org: "globex", role: "operator" },
      { name: "root", sha256: hashToken(TOKENS.admin), role: "admin" },
    ],
  });
  url = (await gateway.listen("127.0.0.1:0")).url;
}, 60_000);
afterAll(async () => {
  await gateway?.close();
  await Promise.all(namespaces.map((ns) => closeNamespace(ns)));
  await env?.close();
});

const api = (token: string, path: string, init: RequestInit & { json?: unknown } = {}) => {
  const { json, ...rest } = init;
  return fetch(`${url}${path}`, {
    ...rest,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(json !== undefined ? { "Content-Type": "application/json" } : {}),
    },
    ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
  });
};

async function submitAndWait(token: string, taskID: string, text: string): Promise<TaskResult> {
  const submitted = await api(token, "/v1/tasks", {
    method: "POST",
    json: { taskID, prompt: script({ text }, { writeFile: { name: "out.txt", content: text } }) },
  });
  expect(submitted.status).toBe(202);
  const result = await api(token, `/v1/tasks/${taskID}/result?wait=30s`);
  expect(result.status).toBe(200);
  return (await result.json()) as TaskResult;
}

describe("the gateway with two orgs", () => {
  it("runs each org's task in its own org, and an org token finds nothing of the other org", async () => {
    const acme = await submitAndWait(TOKENS.acme, "secret-plan", "acme only");
    expect(acme).toMatchObject({ org: "acme", status: "completed", result: "acme only" });

    // globex asks for acme's task every way there is: each answer is the answer for no task at all.
    for (const [method, path] of [
      ["GET", "/v1/tasks/secret-plan"],
      ["GET", "/v1/tasks/secret-plan/events"],
      ["GET", "/v1/tasks/secret-plan/result"],
      ["GET", "/v1/tasks/secret-plan/artifacts"],
      ["POST", "/v1/tasks/secret-plan/cancel"],
      ["GET", "/v1/artifacts/output/secret-plan/changes.patch"],
      ["GET", "/v1/tasks/secret-plan?org=acme"],
      ["GET", "/v1/tasks?org=acme"],
      ["POST", "/v1/dead-letters/secret-plan/replay"],
    ] as const) {
      const response = await api(TOKENS.globex, path, { method });
      expect(response.status, `${method} ${path}`).toBe(404);
      const body = await response.text();
      expect(body, path).not.toContain("acme only");
    }
    const globexList = (await (await api(TOKENS.globex, "/v1/tasks")).json()) as {
      items: { taskID: string }[];
    };
    expect(globexList.items.map((t) => t.taskID)).not.toContain("secret-plan");

    // The legitimate reads beside them.
    expect((await api(TOKENS.acme, "/v1/tasks/secret-plan")).status).toBe(200);
    const patch = await api(TOKENS.acme, "/v1/artifacts/output/secret-plan/changes.patch");
    expect(patch.status).toBe(200);
    expect(await patch.text()).toContain("acme only");

    // The same taskID in globex is globex's own task, unrelated to acme's.
    const globex = await submitAndWait(TOKENS.globex, "secret-plan", "globex only");
    expect(globex).toMatchObject({ org: "globex", result: "globex only" });
    expect(
      await (await api(TOKENS.acme, "/v1/artifacts/output/secret-plan/changes.patch")).text(),
    ).not.toContain("globex only");
  });

  it("lets an org viewer read its org and refuses it a cancel", async () => {
    await submitAndWait(TOKENS.acme, "viewed", "look");
    expect((await api(TOKENS.acmeViewer, "/v1/tasks/viewed")).status).toBe(200);
    const cancel = await api(TOKENS.acmeViewer, "/v1/tasks/viewed/cancel", { method: "POST" });
    expect(cancel.status).toBe(403);
    expect((await api(TOKENS.acme, "/v1/tasks/viewed/cancel", { method: "POST" })).status).toBe(202);
  });

  it("gives an org token the stats and costs of its own org only, and an admin one entry per org", async () => {
    const billed = (taskID: string, cost: number, model: string) => ({
      taskID,
      prompt: JSON.stringify({ steps: [{ text: model }], usage: { input: 30, output: 3 }, cost, model }),
    });
    for (const [token, task] of [
      [TOKENS.acme, billed("acme-billed", 0.5, "acme-model")],
      [TOKENS.globex, billed("globex-billed", 0.25, "globex-model")],
    ] as const) {
      expect((await api(token, "/v1/tasks", { method: "POST", json: task })).status).toBe(202);
      expect((await api(token, `/v1/tasks/${task.taskID}/result?wait=30s`)).status).toBe(200);
    }
    type Stats = { orgs: { org: string; totals: { tasks: number; cost: number } }[] };
    type Costs = { items: { org: string; model: string | null; cost: number }[] };
    const read = async <T>(token: string, path: string): Promise<T> => {
      const response = await api(token, path);
      expect(response.status, path).toBe(200);
      return (await response.json()) as T;
    };

    // Each org token: its org, nothing of the other's; naming the other org is not found.
    const mine: Record<string, Stats["orgs"][number]> = {};
    for (const [org, token, other] of [
      ["acme", TOKENS.acmeViewer, "globex"],
      ["globex", TOKENS.globex, "acme"],
    ] as const) {
      const stats = await read<Stats>(token, "/v1/stats");
      expect(stats.orgs.map((o) => o.org)).toEqual([org]);
      mine[org] = stats.orgs[0]!;
      const costs = await read<Costs>(token, "/v1/costs");
      expect(new Set(costs.items.map((l) => l.org))).toEqual(new Set([org]));
      expect(costs.items.find((l) => l.model === `${org}-model`)?.cost).toBe(org === "acme" ? 0.5 : 0.25);
      expect(JSON.stringify(costs)).not.toContain(`${other}-model`);
      for (const path of [`/v1/stats?org=${other}`, `/v1/costs?org=${other}`]) {
        const refused = await api(token, path);
        expect(refused.status, path).toBe(404);
        expect(await refused.text()).not.toContain(`${other}-model`);
      }
    }
    expect(mine.acme!.totals.cost).toBe(0.5);
    expect(mine.globex!.totals.cost).toBe(0.25);

    // The admin: both orgs, each as its own token sees it; or one, when it names it.
    const all = await read<Stats>(TOKENS.admin, "/v1/stats");
    expect(all.orgs.map((o) => o.org)).toEqual(["acme", "globex"]);
    for (const o of all.orgs) expect(o.totals).toEqual(mine[o.org]!.totals);
    const one = await read<Stats>(TOKENS.admin, "/v1/stats?org=globex");
    expect(one.orgs.map((o) => o.org)).toEqual(["globex"]);
    const costs = await read<Costs>(TOKENS.admin, "/v1/costs");
    expect(costs.items.find((l) => l.model === "acme-model")?.org).toBe("acme");
    expect(costs.items.find((l) => l.model === "globex-model")?.org).toBe("globex");
  });

  it("lets an admin token name either org, and asks it to name one", async () => {
    const none = await api(TOKENS.admin, "/v1/status");
    expect(none.status).toBe(400);
    expect(await none.json()).toMatchObject({ field: "query.org" });
    for (const org of ["acme", "globex"]) {
      const status = (await (await api(TOKENS.admin, `/v1/status?org=${org}`)).json()) as { org: string };
      expect(status.org).toBe(org);
    }
    const view = await fetch(`${url}/v1/tasks/secret-plan`, {
      headers: { Authorization: `Bearer ${TOKENS.admin}`, "Station-Org": "globex" },
    });
    expect(((await view.json()) as { result: TaskResult }).result.result).toBe("globex only");
    expect((await api(TOKENS.admin, "/v1/status?org=initech")).status).toBe(404);
  });
});

describe("the web console with two orgs", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  async function signedIn(token: string): Promise<WatchedPage> {
    const watched = await openWatchedPage(browser);
    await watched.page.goto(`${url}/`);
    await watched.page.getByLabel("Gateway token").fill(token);
    await watched.page.getByRole("button", { name: "Sign in" }).click();
    await watched.page.getByRole("heading", { name: "Overview" }).waitFor();
    return watched;
  }

  it("never shows one org's task to another org's token, in the table or by its link", async () => {
    await submitAndWait(TOKENS.acme, "acme-console", "acme console task");
    await submitAndWait(TOKENS.globex, "globex-console", "globex console task");

    const acme = await signedIn(TOKENS.acme);
    try {
      const { page } = acme;
      await page.getByText("org acme").waitFor();
      // The overview's charts: acme's only.
      await page
        .getByRole("img", { name: /^Tasks finished per minute over the last 24 hours in acme:/ })
        .waitFor();
      expect(await page.getByRole("img", { name: /in globex:/ }).count()).toBe(0);
      await page.goto(`${url}/#/tasks`);
      await page.locator('tr[data-task="acme-console"]').waitFor();
      expect(await page.locator('tr[data-task="globex-console"]').count()).toBe(0);
      expect(await page.locator("main").textContent()).not.toContain("globex");
      expect(acme.errors).toEqual([]);

      // globex's task by its link: the answer for a task that does not exist, and nothing of it.
      await page.goto(`${url}/#/tasks/globex-console`);
      await page.getByRole("alert").waitFor();
      expect(await page.getByRole("alert").textContent()).toContain("not found");
      expect(await page.locator("main").textContent()).not.toContain("globex console task");
      // The browser logs each refused request (404) as a console error; those and nothing else.
      expect(acme.errors.length).toBeGreaterThan(0);
      for (const error of acme.errors) expect(error).toMatch(/Failed to load resource: .*404/);
    } finally {
      await acme.close();
    }

    // An admin picks the org; each org shows only its own task.
    const admin = await signedIn(TOKENS.admin);
    try {
      const { page } = admin;
      // One pair of charts per org, whichever org is picked.
      for (const name of ["acme", "globex"]) {
        await page
          .getByRole("img", { name: new RegExp(`^Cost per hour over the last 24 hours in ${name}:`) })
          .waitFor();
      }
      const org = page.getByLabel("Org");
      expect(await org.locator("option").allTextContents()).toEqual(["acme", "globex"]);
      await org.selectOption("globex");
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.goto(`${url}/#/tasks`);
      await page.locator('tr[data-task="globex-console"]').waitFor();
      expect(await page.locator('tr[data-task="acme-console"]').count()).toBe(0);
      expect(admin.errors).toEqual([]);
    } finally {
      await admin.close();
    }
  });
});
