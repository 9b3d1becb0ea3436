// The web console in a real headless Chromium (Debian's package, driven by playwright-core)
// against the gateway, a real nats-server and a worker with the scripted driver. Every test fails
// on any console error or uncaught exception in the page.
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import { ScriptedDriver, script, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, startGatewayEnv } from "./support/gateway-env.js";

/**
 * Where the screenshots go: a temporary folder, or the folder named by STATION_SCREENSHOTS
 * (`npm run screenshots` writes the README's, docs/images, so that a plain test run leaves the
 * checkout clean).
 */
const IMAGES = process.env.STATION_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), "console-shots-"));

/** Saves a full-page screenshot and checks that a PNG was written. */
async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(IMAGES, { recursive: true });
  const path = join(IMAGES, name);
  await page.screenshot({ path, fullPage: true });
  expect(readFileSync(path).subarray(1, 4).toString()).toBe("PNG");
}

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

async function submitOverApi(task: Record<string, unknown>): Promise<string> {
  const response = await env.api("/v1/tasks", { method: "POST", json: task });
  expect(response.status).toBe(202);
  return ((await response.json()) as { taskID: string }).taskID;
}

describe("the web console", () => {
  it("signs in, keeps the token out of the URL, submits from the form and shows the run's story live, in order, then the result and the diff", async () => {
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
      { writeFile: { name: "hello.txt", content: "hello from the console\n" } },
      { text: "Wrote hello.txt." },
    );
    await page.getByLabel("Prompt").fill(prompt);
    await page.getByLabel("Session").fill("console-s1");
    await page.getByRole("button", { name: "Submit task" }).click();

    await page.getByRole("heading", { name: /^Task t-/ }).waitFor();
    const taskID = (await page.getByRole("heading", { name: /^Task t-/ }).textContent())!.slice(5);
    expect(page.url()).toContain(`#/tasks/${taskID}`);
    const story = page.locator("ol.story");
    // Live: the text and the tool call are shown while the task still runs (no result yet).
    await story.locator(".ev-text", { hasText: "Reading the repository." }).waitFor();
    await story.locator(".ev-tool", { hasText: "bash" }).waitFor();
    expect(await page.getByTestId("result").count()).toBe(0);
    await expect.poll(() => page.locator(".status").first().textContent()).toBe("running");

    await page.getByTestId("result").waitFor({ timeout: 30_000 });
    expect(await page.getByTestId("result").textContent()).toContain("Wrote hello.txt.");
    await expect.poll(() => page.locator(".status").first().textContent()).toBe("completed");
    // The story holds every event once, in seq order, and its steps in the order they happened.
    const seqs = await story.locator("li").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
    expect(seqs.length).toBeGreaterThan(4);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    const kinds = await story.locator("li .kind").allTextContents();
    const order = ["text", "thinking", "tool"].map((k) => kinds.indexOf(k));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // The tool call's arguments and output are there.
    await story.locator(".ev-tool summary", { hasText: "bash" }).click();
    await story.getByText('"command": "ls -la"').waitFor();
    await story.getByText("README.md").waitFor();
    // The diff, rendered: the file and its added line, coloured as an addition.
    const diff = page.getByLabel("Diff");
    await diff.getByText("hello.txt", { exact: true }).waitFor();
    expect(await diff.locator(".dl-add").allTextContents()).toContain("+hello from the console");

    await screenshot(page, "console-task.png");

    // The link reopens the same view: events replay from seq 1 in a new tab.
    const again = await openWatchedPage(browser);
    pages.push(again);
    await again.page.goto(`${env.url}/`);
    await again.page.getByLabel("Gateway token").fill(TOKENS.operator);
    await again.page.getByRole("button", { name: "Sign in" }).click();
    await again.page.getByRole("heading", { name: "Overview" }).waitFor();
    await again.page.goto(`${env.url}/#/tasks/${taskID}`);
    await again.page.getByTestId("result").waitFor();
    await expect
      .poll(() => again.page.locator("ol.story li").evaluateAll((l) => l.map((li) => Number(li.dataset.seq))))
      .toEqual(seqs);
  });

  it("cancels a slow task with its button", async () => {
    const taskID = await submitOverApi({ prompt: script({ text: "starting" }, { sleep: 60_000 }) });
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks/${taskID}`);
    await page.locator("ol.story .ev-text", { hasText: "starting" }).waitFor();
    await page.getByRole("button", { name: "Cancel task" }).click();
    await expect
      .poll(() => page.locator(".status").first().textContent(), { timeout: 20_000 })
      .toBe("cancelled");
    expect(await page.getByRole("button", { name: "Cancel task" }).count()).toBe(0);
    const view = (await (await env.api(`/v1/tasks/${taskID}`)).json()) as { status: string };
    expect(view.status).toBe("cancelled");
  });

  it("filters the task table through the URL, and the filter form writes the URL", async () => {
    const a = await submitOverApi({ prompt: script({ text: "alpha" }), session: { name: "filter-a" } });
    const b = await submitOverApi({ prompt: script({ text: "beta" }), session: { name: "filter-b" } });
    for (const id of [a, b]) expect((await env.api(`/v1/tasks/${id}/result?wait=30s`)).status).toBe(200);
    const page = await signedIn(TOKENS.operator);

    await page.goto(`${env.url}/#/tasks?session=filter-a`);
    await page.locator(`tr[data-task="${a}"]`).waitFor();
    expect(await page.locator(`tr[data-task="${b}"]`).count()).toBe(0);
    expect(await page.getByLabel("Session").inputValue()).toBe("filter-a");

    await page.getByLabel("Session").fill("filter-b");
    await page.getByLabel("Status").selectOption("completed");
    await page.getByRole("button", { name: "Apply filters" }).click();
    await page.locator(`tr[data-task="${b}"]`).waitFor();
    expect(await page.locator(`tr[data-task="${a}"]`).count()).toBe(0);
    const hash = new URL(page.url()).hash;
    expect(hash).toContain("session=filter-b");
    expect(hash).toContain("status=completed");

    // Text in the prompt, from the URL too.
    await page.goto(`${env.url}/#/tasks?q=alpha`);
    await page.locator(`tr[data-task="${a}"]`).waitFor();
    expect(await page.locator(`tr[data-task="${b}"]`).count()).toBe(0);
  });

  it("updates the table live from pushed task changes, and the pause toggle holds it still", async () => {
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks?session=live-table`);
    await page.getByRole("table").waitFor();
    await page.getByText(/^\d+ tasks, newest first$/).waitFor();
    const statusOf = (id: string) => page.locator(`tr[data-task="${id}"] .status`).textContent();

    // A new task appears and walks through its states without a reload.
    const first = await submitOverApi({
      prompt: script({ text: "one" }, { sleep: 500 }),
      session: { name: "live-table" },
    });
    await expect.poll(() => statusOf(first)).toBe("running");
    await expect.poll(() => statusOf(first), { timeout: 20_000 }).toBe("completed");
    // Not matching the filter: never shown.
    const other = await submitOverApi({ prompt: script({ text: "elsewhere" }), session: { name: "other" } });

    await page.getByRole("button", { name: "Pause live updates" }).click();
    expect(await page.getByRole("button", { name: "Resume live updates" }).getAttribute("aria-pressed")).toBe(
      "true",
    );
    const second = await submitOverApi({ prompt: script({ text: "two" }), session: { name: "live-table" } });
    for (const id of [second, other]) {
      expect((await env.api(`/v1/tasks/${id}/result?wait=30s`)).status).toBe(200);
    }
    expect(await page.locator(`tr[data-task="${second}"]`).count()).toBe(0);
    await page.getByRole("button", { name: "Resume live updates" }).click();
    await expect.poll(() => statusOf(second)).toBe("completed");
    expect(await page.locator(`tr[data-task="${other}"]`).count()).toBe(0);
    // Newest first.
    const order: (string | null)[] = [];
    for (const row of await page.locator("tbody tr").all()) order.push(await row.getAttribute("data-task"));
    expect(order).toEqual([second, first]);
  });

  it("shows a viewer no write action anywhere", async () => {
    const running = await submitOverApi({ prompt: script({ text: "viewer watches" }, { sleep: 60_000 }) });
    const page = await signedIn(TOKENS.viewer);
    const writeButtons = () => page.getByRole("button", { name: /cancel|replay|submit/i }).count();
    expect(await page.getByRole("link", { name: "Submit" }).count()).toBe(0);
    expect(await writeButtons()).toBe(0);

    await page.goto(`${env.url}/#/tasks`);
    await page.locator(`tr[data-task="${running}"]`).waitFor();
    expect(await writeButtons()).toBe(0);
    expect(await page.getByRole("checkbox").count()).toBe(0);

    await page.goto(`${env.url}/#/tasks/${running}`);
    await page.locator("ol.story .ev-text", { hasText: "viewer watches" }).waitFor();
    expect(await writeButtons()).toBe(0);

    for (const view of ["dead-letters", "workers", "sessions", "submit"]) {
      await page.goto(`${env.url}/#/${view}`);
      await page.locator("main h1, main p").first().waitFor();
      expect(await writeButtons(), view).toBe(0);
    }
    await page.goto(`${env.url}/#/submit`);
    await page.getByText("Your token may not submit tasks.").waitFor();
    expect(await page.getByLabel("Prompt").count()).toBe(0);
    // The operator beside it has the button on the same task.
    const operator = await signedIn(TOKENS.operator);
    await operator.goto(`${env.url}/#/tasks/${running}`);
    await operator.getByRole("button", { name: "Cancel task" }).click();
    await expect
      .poll(() => operator.locator(".status").first().textContent(), { timeout: 20_000 })
      .toBe("cancelled");
  });

  it("shows the overview: queue depth, running tasks, workers and busy slots, dead letters", async () => {
    const slow = await submitOverApi({
      prompt: script({ text: "Refactoring the parser. " }, { sleep: 60_000 }),
      session: { name: "parser" },
    });
    const page = await signedIn(TOKENS.admin);
    const card = (label: string) =>
      page.locator(".card", { has: page.getByText(label, { exact: true }) }).locator("dd");
    await expect.poll(() => card("Live workers").textContent()).toBe("1");
    await expect.poll(() => card("Running").textContent()).toBe("1");
    await expect.poll(() => card("Busy slots").textContent()).toBe("1 / 3");
    await expect.poll(() => card("Busy slots").textContent()).toMatch(/^\d+ \/ 3$/);
    expect(await card("Queue depth").textContent()).toMatch(/^\d+$/);
    expect(await card("Dead letters").textContent()).toMatch(/^\d+$/);
    await page.getByRole("table").getByRole("rowheader").first().waitFor();
    await screenshot(page, "console-overview.png");
    expect((await env.api(`/v1/tasks/${slow}/cancel`, { method: "POST" })).status).toBe(202);
    // The other pages render their tables.
    for (const [view, heading] of [
      ["workers", "Workers"],
      ["sessions", "Sessions"],
      ["dead-letters", "Dead letters"],
    ] as const) {
      await page.getByRole("link", { name: heading, exact: true }).click();
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/${view}`);
    }
  });

  it("serves the console with a same-origin content security policy and no token in the page", async () => {
    const response = await fetch(`${env.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/html/);
    expect(response.headers.get("content-security-policy")).toContain("connect-src 'self'");
    const vendor = await fetch(`${env.url}/console/vendor/preact-htm.js`);
    expect(vendor.status).toBe(200);
    expect(await vendor.text()).toContain("export");
    expect((await fetch(`${env.url}/console/../package.json`)).status).toBe(404);
    expect((await fetch(`${env.url}/console/nothing.js`)).status).toBe(404);
  });
});
