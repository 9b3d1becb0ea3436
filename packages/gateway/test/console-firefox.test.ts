// The web console in a real headless Firefox (Debian's firefox-esr over WebDriver BiDi) against the
// gateway, a real nats-server and a worker with the scripted driver: the main flow of
// console.test.ts, so that the console is known to work outside Chromium too. Fails on any console
// error or uncaught exception in the page.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { launchFirefox, openWatchedPage } from "@station-coding/testkit/browser";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
let browser: Browser;
const pages: WatchedPage[] = [];
beforeAll(async () => {
  [env, browser] = await Promise.all([startGatewayEnv(), launchFirefox()]);
  await startWorker(env, new ScriptedDriver(), { concurrency: 1 });
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
async function signedIn(token: string): Promise<Page> {
  const watched = await openWatchedPage(browser);
  pages.push(watched);
  const { page } = watched;
  await page.goto(`${env.url}/`);
  await page.getByLabel("Gateway token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  return page;
}

describe("the web console in Firefox", () => {
  it("signs in, submits from the form and shows the run's story live, in order, then the result and the highlighted diff", async () => {
    const page = await signedIn(TOKENS.operator);
    expect(page.url()).not.toContain(TOKENS.operator);
    expect(await page.evaluate("localStorage.length")).toBe(0);

    await page.getByRole("link", { name: "Submit" }).click();
    const prompt = script(
      { text: "Reading the repository. " },
      { thinking: "The file should greet." },
      { tool: { name: "bash", args: { command: "ls -la" }, output: "README.md\n" } },
      // Holds the run open: the first steps must be on the page before the result exists.
      { sleep: 1500 },
      { writeFile: { name: "hello.ts", content: 'const greeting = "hello from firefox";\n' } },
      { text: "Wrote hello.ts." },
    );
    await page.getByLabel("Prompt").fill(prompt);
    await page.getByLabel("Session").fill("console-firefox-s1");
    await page.getByRole("button", { name: "Submit task" }).click();

    const heading = page.getByRole("heading", { name: /^Task t-/ });
    await heading.waitFor();
    const taskID = (await heading.textContent())!.slice(5);
    expect(page.url()).toContain(`#/tasks/${taskID}`);
    const story = page.locator("ol.story");
    // Live: the text and the tool call are shown while the task still runs (no result yet).
    await story.locator(".ev-text", { hasText: "Reading the repository." }).waitFor();
    await story.locator(".ev-tool", { hasText: "bash" }).waitFor();
    expect(await page.getByTestId("result").count()).toBe(0);
    await expect.poll(() => page.locator(".status").first().textContent()).toBe("running");

    await page.getByTestId("result").waitFor({ timeout: 30_000 });
    expect(await page.getByTestId("result").textContent()).toContain("Wrote hello.ts.");
    await expect.poll(() => page.locator(".status").first().textContent()).toBe("completed");
    // Every event once, in seq order, and the steps in the order they happened.
    const seqs = await story.locator("li").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
    expect(seqs.length).toBeGreaterThan(4);
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const kinds = await story.locator("li .kind").allTextContents();
    const order = ["text", "thinking", "tool"].map((k) => kinds.indexOf(k));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    await story.locator(".ev-tool summary", { hasText: "bash" }).click();
    await story.getByText('"command": "ls -la"').waitFor();
    // The diff, rendered: the file, its added line coloured as an addition and highlighted as
    // TypeScript.
    const diff = page.getByLabel("Diff");
    const file = diff.locator("section.diff-file", { has: page.getByText("hello.ts", { exact: true }) });
    await file.locator(".dl-add .hljs-keyword", { hasText: /^const$/ }).waitFor();
    expect(await file.getAttribute("data-language")).toBe("typescript");
    expect(await file.locator(".dl-add").allTextContents()).toEqual([
      '+const greeting = "hello from firefox";',
    ]);
    expect(await file.locator(".dl-add .hljs-string").allTextContents()).toEqual(['"hello from firefox"']);
    // (A string: the tests' types have no DOM.) The one TypeScript file is hello.ts.
    const background = await page.evaluate<string>(
      `getComputedStyle(document.querySelector('section.diff-file[data-language="typescript"] .dl-add')).backgroundColor`,
    );
    expect(background).not.toMatch(/^(transparent|rgba\(0, 0, 0, 0\))$/);
  });
});
