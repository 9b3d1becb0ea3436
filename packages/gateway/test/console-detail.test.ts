// The console's task detail in a real headless Chromium against the gateway, a real nats-server
// and a worker with the scripted driver: the highlighted diff, long tool outputs, replay buttons,
// a phone viewport and a 10,000-event story. Every test fails on any console error in the page.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import { ScriptedDriver, script } from "@station-coding/testkit/worker";
import { startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
let browser: Browser;
const pages: WatchedPage[] = [];
beforeAll(async () => {
  [env, browser] = await Promise.all([startGatewayEnv(), launchChromium()]);
  await startWorker(env, new ScriptedDriver(), { concurrency: 3 });
});
afterEach(async () => {
  const errors = pages.flatMap((p) => p.errors);
  await Promise.all(pages.splice(0).map((p) => p.close()));
  expect(errors).toEqual([]);
});
afterAll(async () => {
  await browser?.close();
  await env?.close();
});

/** A fresh tab signed in with `token`, on the overview. */
async function signedIn(token: string, options: Parameters<typeof openWatchedPage>[1] = {}): Promise<Page> {
  const watched = await openWatchedPage(browser, options);
  pages.push(watched);
  const { page } = watched;
  await page.goto(`${env.url}/`);
  await page.getByLabel("Gateway token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

async function submitOverApi(task: Record<string, unknown>): Promise<string> {
  const response = await env.api("/v1/tasks", { method: "POST", json: task });
  expect(response.status).toBe(202);
  return ((await response.json()) as { taskID: string }).taskID;
}

async function finished(taskID: string): Promise<void> {
  expect((await env.api(`/v1/tasks/${taskID}/result?wait=30s`)).status).toBe(200);
}

describe("the console's task detail", () => {
  it("highlights the diff by file language, keeps the +/- colouring, and shows an unknown extension plain", async () => {
    const taskID = await submitOverApi({
      prompt: script(
        {
          writeFile: {
            name: "greet.ts",
            content:
              'const greeting: string = "hello";\nexport function greet(): string {\n  return greeting;\n}\n',
          },
        },
        { writeFile: { name: "notes.zzq", content: "const is just a word here\n" } },
        { text: "Wrote two files." },
      ),
    });
    await finished(taskID);
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks/${taskID}`);
    const diff = page.getByLabel("Diff");
    const ts = diff.locator("section.diff-file", { has: page.getByText("greet.ts", { exact: true }) });
    await ts
      .locator(".hljs-keyword", { hasText: /^const$/ })
      .first()
      .waitFor();
    expect(await ts.getAttribute("data-language")).toBe("typescript");
    expect(await ts.locator(".hljs-string").allTextContents()).toContain('"hello"');
    expect(await ts.locator(".hljs-title").allTextContents()).toContain("greet");
    // The line colouring stays: the added line is an addition, its text intact.
    expect(await ts.locator(".dl-add").allTextContents()).toContain('+const greeting: string = "hello";');
    expect(await ts.locator(".dl-add .hljs-keyword").count()).toBeGreaterThan(0);

    const plain = diff.locator("section.diff-file", { has: page.getByText("notes.zzq", { exact: true }) });
    expect(await plain.getAttribute("data-language")).toBe("plain");
    expect(await plain.locator(".dl-add").allTextContents()).toEqual(["+const is just a word here"]);
    expect(await plain.locator("[class^='hljs-'], [class*=' hljs-']").count()).toBe(0);
  });
});
