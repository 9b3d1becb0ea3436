// The console's throughput charts, cost page and prompt search in a real headless Chromium against
// the gateway, a real nats-server and a worker with the scripted driver (tasks of known cost), plus
// records written to the task index itself for an older hour and for a long list.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { TaskIndex } from "@station-coding/protocol";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import { waitFor } from "@station-coding/testkit";
import { ScriptedDriver, startWorker } from "@station-coding/testkit/worker";
import type { Script } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, startGatewayEnv } from "./support/gateway-env.js";

const HOUR = 3_600_000;

let env: GatewayEnv;
let browser: Browser;
let index: TaskIndex;
const pages: WatchedPage[] = [];
beforeAll(async () => {
  [env, browser] = await Promise.all([startGatewayEnv(), launchChromium()]);
  await startWorker(env, new ScriptedDriver(), { concurrency: 3 });
  index = new TaskIndex(env.nc, env.names);
  // Three tasks of known cost now, and one finished three hours ago (written as a worker would).
  await Promise.all([
    run("chart-a1", {
      steps: [{ text: "a1" }],
      usage: { input: 100, output: 10 },
      cost: 0.25,
      model: "model-a",
    }),
    run("chart-a2", {
      steps: [{ text: "a2" }],
      usage: { input: 200, output: 20 },
      cost: 0.5,
      model: "model-a",
    }),
    run("chart-b1", {
      steps: [{ text: "b1" }],
      usage: { input: 40, output: 4 },
      cost: 0.125,
      model: "model-b",
    }),
  ]);
  const finished = Date.now() - 3 * HOUR;
  await index.update({
    taskID: "chart-old",
    status: "completed",
    submittedAt: new Date(finished - 60_000).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    prompt: "an older task",
    metrics: {
      duration: 1000,
      toolCalls: 0,
      tokens: 66,
      inputTokens: 60,
      outputTokens: 6,
      cost: 2,
      model: "model-old",
    },
  });
  await waitFor(async () => (await env.api("/v1/tasks/chart-old")).ok, { message: "chart-old in the view" });
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

async function run(taskID: string, billed: Script): Promise<void> {
  const submitted = await env.api("/v1/tasks", {
    method: "POST",
    json: { taskID, prompt: JSON.stringify(billed) },
  });
  expect(submitted.status).toBe(202);
  const result = await env.api(`/v1/tasks/${taskID}/result?wait=30s`);
  expect(((await result.json()) as { status: string }).status).toBe("completed");
}

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

/** The cells of a table row, as text. */
async function cells(page: Page, row: ReturnType<Page["locator"]>): Promise<string[]> {
  await row.first().waitFor();
  return (await row.locator("th, td").allTextContents()).map((t) => t.trim());
}

describe("the console's throughput and costs", () => {
  it("charts tasks per minute and cost per hour over the last day, with the totals in its table", async () => {
    const page = await signedIn(TOKENS.viewer);
    const minutes = page.getByRole("img", { name: /^Tasks finished per minute over the last 24 hours/ });
    await minutes.waitFor();
    expect(await minutes.getAttribute("aria-label")).toContain("4 in all, at most");
    // Three tasks now: at least one minute with a bar; one bar of cost now and one three hours ago.
    expect(await minutes.locator("path.chart-minutes").getAttribute("d")).toMatch(/^M/);
    const costs = page.getByRole("img", { name: /^Cost per hour over the last 24 hours/ });
    expect(await costs.getAttribute("aria-label")).toContain("$2.88 in all, at most $2.00 in an hour");
    expect(await costs.locator("rect").count()).toBe(2);

    await page.getByText("The numbers per hour").click();
    const table = page.getByRole("table", {
      name: "Tasks finished and their cost per hour in this namespace",
    });
    expect(await cells(page, table.locator("tfoot tr"))).toEqual(["Total", "4", "$2.88"]);
    const rows = await table.locator("tbody tr").all();
    expect(rows).toHaveLength(24);
    const busy = [];
    for (const row of rows) {
      const [, tasks, cost] = await cells(page, row);
      if (tasks !== "0") busy.push([tasks, cost]);
    }
    // The three tasks of now in the last hour (or the one before when it just turned), the old one alone.
    expect(busy.map(([tasks]) => Number(tasks)).reduce((a, b) => a + b, 0)).toBe(4);
    expect(busy).toContainEqual(["1", "$2.00"]);
  });

  it("shows tasks, tokens and cost by model on the Costs page, and their sum", async () => {
    const page = await signedIn(TOKENS.viewer);
    await page.getByRole("link", { name: "Costs" }).click();
    await page.getByRole("heading", { name: "Costs" }).waitFor();
    const table = page.getByRole("table", { name: /^Finished tasks, tokens and cost by org and model/ });
    await table.waitFor();
    const row = (model: string) =>
      table.locator("tbody tr", { has: page.getByRole("rowheader", { name: model }) });
    // Org, model, provider, tasks, input, output, tokens, cost.
    expect(await cells(page, row("model-a"))).toEqual([
      "—",
      "model-a",
      "test",
      "2",
      "300",
      "30",
      "330",
      "$0.7500",
    ]);
    expect(await cells(page, row("model-b"))).toEqual([
      "—",
      "model-b",
      "test",
      "1",
      "40",
      "4",
      "44",
      "$0.1250",
    ]);
    expect(await cells(page, row("model-old"))).toEqual([
      "—",
      "model-old",
      "—",
      "1",
      "60",
      "6",
      "66",
      "$2.00",
    ]);
    expect(await cells(page, table.locator("tfoot tr"))).toEqual(["Total", "4", "400", "40", "440", "$2.88"]);

    // The period is in the URL; the last day still holds all four.
    await page.getByLabel("Period").selectOption("1");
    await page.waitForURL(/#\/costs\?days=1$/);
    await table.getByText("the last day").waitFor();
    expect(await cells(page, table.locator("tfoot tr"))).toEqual(["Total", "4", "400", "40", "440", "$2.88"]);
  });

  it("searches prompts on the server from the URL, finding a task behind a thousand newer ones", async () => {
    await run("needle-task", { steps: [{ text: "Fix the FLAKY login spec" }] });
    // 1,000 newer tasks, as the dispatcher writes a submit's record: more than the table lists.
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        index.update({
          taskID: `hay-${i}`,
          status: "queued",
          submittedAt: new Date().toISOString(),
          prompt: `hay ${i}`,
        }),
      ),
    );
    await waitFor(async () => (await env.api("/v1/tasks/hay-999")).ok, { message: "hay in the view" });
    const page = await signedIn(TOKENS.viewer);
    await page.goto(`${env.url}/#/tasks`);
    await page.locator('tr[data-task="hay-999"]').waitFor();
    expect(await page.locator('tr[data-task="needle-task"]').count()).toBe(0);

    await page.goto(`${env.url}/#/tasks?q=flaky%20login`);
    await page.locator('tr[data-task="needle-task"]').waitFor();
    expect(await page.locator("table.tasks tbody tr").count()).toBe(1);
    expect(await page.getByLabel("Prompt contains").inputValue()).toBe("flaky login");
  });
});
