// The console's task detail in a real headless Chromium against the gateway, a real nats-server
// and a worker with the scripted driver: the highlighted diff, long tool outputs, replay buttons,
// a phone viewport and a 10,000-event story. Every test fails on any console error in the page.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import { toolCallScenario, waitFor } from "@station-coding/testkit";
import { ScriptedDriver, script, startOpenCode, startWorker } from "@station-coding/testkit/worker";
import type { GatewayEnv } from "./support/gateway-env.js";
import { TOKENS, startGatewayEnv } from "./support/gateway-env.js";

let env: GatewayEnv;
let browser: Browser;
const pages: WatchedPage[] = [];
beforeAll(async () => {
  [env, browser] = await Promise.all([startGatewayEnv(), launchChromium()]);
  // Two attempts: a task failing retryably twice is dead-lettered, and its replay is its third run.
  await startWorker(env, new ScriptedDriver(), { concurrency: 3, maxAttempts: 2 });
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

/** A fresh tab signed in with `token` (to `env`'s gateway unless `url`), on the overview. */
async function signedIn(
  token: string,
  options: Parameters<typeof openWatchedPage>[1] & { url?: string } = {},
): Promise<Page> {
  const { url, ...context } = options;
  const watched = await openWatchedPage(browser, context);
  pages.push(watched);
  const { page } = watched;
  await page.goto(`${url ?? env.url}/`);
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

/** Submits a task that fails retryably twice (dead-lettered), then on its replay sleeps and succeeds. */
async function deadLettered(): Promise<string> {
  const taskID = await submitOverApi({
    prompt: script(
      { fail: { message: "the provider is overloaded", retryable: true }, times: 2 },
      // Long enough for the page's 2 s poll of the task view to see it running.
      { sleep: 4000 },
      { text: "third time lucky" },
    ),
  });
  await waitFor(
    async () => {
      const { items } = (await (await env.api("/v1/dead-letters")).json()) as { items: { taskID: string }[] };
      return items.some((l) => l.taskID === taskID);
    },
    { timeout: 30_000, message: `${taskID} dead-lettered` },
  );
  return taskID;
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

  it("collapses a long tool output to its first lines, with a button that shows all of them", async () => {
    const output = Array.from({ length: 200 }, (_, i) => `line ${i + 1}`).join("\n");
    const taskID = await submitOverApi({
      prompt: script({ tool: { name: "bash", args: { command: "seq -f 'line %g' 200" }, output } }),
    });
    await finished(taskID);
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks/${taskID}`);
    const tool = page.locator("ol.story .ev-tool");
    await tool.locator("summary").click();
    const shown = tool.getByTestId("tool-output");
    expect(await shown.textContent()).toBe(`${output.split("\n").slice(0, 30).join("\n")}\n…`);
    expect(await tool.getByRole("button", { name: "Show full output" }).count()).toBe(0);
    await tool.getByRole("button", { name: "Show all 200 lines" }).click();
    await expect.poll(() => shown.textContent()).toBe(output);
    expect(await tool.getByRole("button", { name: /^Show all/ }).count()).toBe(0);
  });

  it("replays a dead-lettered task from its page and follows the new run live to completed", async () => {
    const taskID = await deadLettered();
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks/${taskID}`);
    const status = () => page.locator(".title-row .status").textContent();
    await expect.poll(status).toBe("error");
    await page.getByText("the provider is overloaded").first().waitFor();
    await page.getByRole("button", { name: "Replay task" }).click();
    await page.getByText("Replayed: the task is queued again.").waitFor();
    // The same page, no reload: the new run's status and story arrive live.
    await expect.poll(status, { timeout: 20_000 }).toBe("running");
    expect(await page.getByRole("button", { name: "Replay task" }).count()).toBe(0);
    await expect.poll(status, { timeout: 20_000 }).toBe("completed");
    expect(await page.getByTestId("result").textContent()).toBe("third time lucky");
    await page.locator("ol.story .ev-text", { hasText: "third time lucky" }).waitFor();
    const view = (await (await env.api(`/v1/tasks/${taskID}`)).json()) as { status: string };
    expect(view.status).toBe("completed");
  });

  it("replays a dead letter from the Dead letters page: the row goes and a note says so; a viewer has neither button", async () => {
    const [first, second] = await Promise.all([deadLettered(), deadLettered()]);
    const viewer = await signedIn(TOKENS.viewer);
    await viewer.goto(`${env.url}/#/dead-letters`);
    await viewer.locator("tr", { hasText: first }).waitFor();
    expect(await viewer.getByRole("button", { name: /replay/i }).count()).toBe(0);
    await viewer.goto(`${env.url}/#/tasks/${first}`);
    await expect.poll(() => viewer.locator(".title-row .status").textContent()).toBe("error");
    expect(await viewer.getByRole("button", { name: /replay|cancel/i }).count()).toBe(0);

    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/dead-letters`);
    await page.locator("tr", { hasText: second }).waitFor();
    await page.getByRole("button", { name: `Replay ${first}` }).click();
    await page.getByRole("status").getByText(`Replayed ${first}.`).waitFor();
    await expect.poll(() => page.locator("tr", { hasText: first }).count()).toBe(0);
    expect(await page.locator("tr", { hasText: second }).count()).toBe(1);
    expect(await (await env.api(`/v1/tasks/${first}/result?wait=30s`)).json()).toMatchObject({
      status: "completed",
      result: "third time lucky",
    });
  });

  it("replays selected failed tasks from the table, refusing one that has no dead letter, with Until kept in the URL", async () => {
    const dead = await deadLettered();
    // Failed for good: no dead letter, so nothing to replay.
    const fatal = await submitOverApi({
      prompt: script({ fail: { message: "no such model", retryable: false } }),
    });
    await finished(fatal);
    const page = await signedIn(TOKENS.operator);
    const until = new Date(Date.now() + 60_000).toISOString();
    await page.goto(`${env.url}/#/tasks?status=error&until=${encodeURIComponent(until)}`);
    expect(await page.getByLabel("Until").inputValue()).not.toBe("");
    for (const id of [dead, fatal]) await page.getByLabel(`Select ${id}`).check();
    await page.getByRole("button", { name: "Replay selected (2)" }).click();
    await page
      .getByRole("status")
      .getByText("Replayed 1 of 2 failed tasks; 1 failed for good (no dead letter to replay).")
      .waitFor();
    expect(await (await env.api(`/v1/tasks/${dead}/result?wait=30s`)).json()).toMatchObject({
      status: "completed",
    });
    // An until before both tasks lists neither.
    await page.goto(
      `${env.url}/#/tasks?until=${encodeURIComponent(new Date(Date.now() - 3_600_000).toISOString())}`,
    );
    await page.getByText("0 tasks, newest first").waitFor();
  });

  it("cancels the selected running tasks, and replays every dead task, with the table's bulk buttons", async () => {
    const slow = await Promise.all([1, 2].map(() => submitOverApi({ prompt: script({ sleep: 60_000 }) })));
    const dead = await deadLettered();
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks?status=running`);
    for (const id of slow) await page.getByLabel(`Select ${id}`).check();
    await page.getByRole("button", { name: "Cancel selected (2)" }).click();
    await page.getByRole("status").getByText("Asked 2 of 2 tasks to cancel.").waitFor();
    for (const id of slow) {
      expect(await (await env.api(`/v1/tasks/${id}/result?wait=30s`)).json()).toMatchObject({
        status: "cancelled",
      });
    }
    await page.goto(`${env.url}/#/tasks`);
    await page.getByRole("button", { name: "Replay dead tasks" }).click();
    await page
      .getByRole("status")
      .getByText(/^Replayed [1-9]\d* dead tasks\.$/)
      .waitFor();
    expect(await (await env.api(`/v1/tasks/${dead}/result?wait=30s`)).json()).toMatchObject({
      status: "completed",
      result: "third time lucky",
    });
  });

  it("fits a phone: no sideways page scroll on the overview, tasks, a task with its diff and the other pages; the nav works by touch", async () => {
    const taskID = await submitOverApi({
      prompt: script(
        { text: `A long word: ${"x".repeat(300)} and a long path /${"segment/".repeat(30)}` },
        {
          tool: {
            name: "bash",
            args: { command: `echo ${"wide ".repeat(60)}` },
            output: `${"a-very-wide-line ".repeat(40)}\n`.repeat(5),
          },
        },
        {
          writeFile: {
            name: "wide.ts",
            content: `export const wide = "${"w".repeat(400)}";\n`,
          },
        },
        { text: "Done." },
      ),
      session: { name: `phone-${"s".repeat(40)}` },
    });
    await finished(taskID);
    const page = await signedIn(TOKENS.operator, {
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 3,
    });
    // Compared with the device width: on a phone a page wider than its viewport widens the layout
    // viewport itself (innerWidth grows with it), so innerWidth alone would hide an overflow.
    const fits = async (view: string) => {
      // (A string: the tests' types have no DOM.) The outermost elements reaching past the right
      // edge, outside any box that scrolls or clips them: the culprits, for the failure message.
      const { scrollWidth, innerWidth, wide } = await page.evaluate<{
        scrollWidth: number;
        innerWidth: number;
        wide: string[];
      }>(`(() => {
        const wide = [];
        for (const el of document.querySelectorAll("body *")) {
          if (el.getBoundingClientRect().right <= 391) continue;
          const parent = el.parentElement;
          if (parent !== document.body && parent.getBoundingClientRect().right > 391) continue;
          let clipped = false;
          for (let a = parent; a && a !== document.body; a = a.parentElement) {
            if (getComputedStyle(a).overflowX !== "visible") clipped = true;
          }
          if (!clipped) wide.push(el.tagName.toLowerCase() + "." + [...el.classList].join("."));
        }
        return { scrollWidth: document.scrollingElement.scrollWidth, innerWidth: window.innerWidth, wide };
      })()`);
      expect({ view, scrollWidth, innerWidth, wide }).toEqual({
        view,
        scrollWidth: 390,
        innerWidth: 390,
        wide: [],
      });
    };
    await fits("overview");

    // Every nav link is on screen and a tap opens its view.
    const nav = page.getByRole("navigation", { name: "Main" });
    for (const link of await nav.getByRole("link").all()) {
      const box = (await link.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(390);
      expect(box.height).toBeGreaterThan(0);
    }
    await nav.getByRole("link", { name: "Tasks" }).tap();
    await page.locator(`tr[data-task="${taskID}"]`).waitFor();
    await fits("tasks");

    await page.locator(`tr[data-task="${taskID}"] a`).first().tap();
    await page.getByRole("heading", { name: `Task ${taskID}` }).waitFor();
    await page.getByLabel("Diff").getByText("wide.ts", { exact: true }).waitFor();
    await page.locator("ol.story .ev-tool summary").tap();
    await page.locator("ol.story .ev-tool").getByTestId("tool-output").waitFor();
    await fits("task detail");

    for (const [view, heading] of [
      ["dead-letters", "Dead letters"],
      ["workers", "Workers"],
      ["sessions", "Sessions"],
      ["submit", "Submit a task"],
    ] as const) {
      await nav.getByRole("link", { name: heading === "Submit a task" ? "Submit" : heading }).tap();
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/${view}`);
      await fits(view);
    }
  });

  it("draws a long run's newest 200 steps, and the earlier ones on Show earlier steps", async () => {
    // Text and thinking alternate: every event is its own step.
    const steps = Array.from({ length: 150 }, (_, i) => [{ text: `t${i}` }, { thinking: `k${i}` }]).flat();
    const taskID = await submitOverApi({ prompt: script(...steps) });
    await finished(taskID);
    const page = await signedIn(TOKENS.operator);
    await page.goto(`${env.url}/#/tasks/${taskID}`);
    await page.getByTestId("result").waitFor();
    const story = page.locator("ol.story");
    const lastSeq = Number(await story.getAttribute("data-last-seq"));
    await expect.poll(() => story.locator("li").last().getAttribute("data-seq")).toBe(String(lastSeq));
    expect(await story.locator("li").count()).toBe(200);
    await story.locator(".ev-thinking", { hasText: "k149" }).waitFor();
    expect(await story.locator(".ev-text", { hasText: /^textt0$/ }).count()).toBe(0);
    const heading = (await page.getByRole("heading", { name: /^Story/ }).textContent())!;
    const total = Number(/\((\d+) steps/.exec(heading)![1]);
    expect(total).toBeGreaterThan(300);

    await page.getByRole("button", { name: `Show earlier steps (${total - 200} more)` }).click();
    await expect.poll(() => story.locator("li").count()).toBe(total);
    expect(await page.getByRole("button", { name: /^Show earlier steps/ }).count()).toBe(0);
    await story.locator(".ev-text", { hasText: /^textt0$/ }).waitFor();
    const seqs = await story.locator("li").evaluateAll((items) => items.map((li) => Number(li.dataset.seq)));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(total);
  });
});

/**
 * The worker cuts a large tool output in its OpenCode driver (TurnEventMapper): the event keeps a
 * head and names the artifact holding the whole output. So this runs real OpenCode with the
 * scripted model and a small `maxInlineOutput`, and a bash call printing more than that.
 */
describe("the console's task detail with a cut tool output (real OpenCode)", () => {
  let ocEnv: GatewayEnv;
  let oc: Awaited<ReturnType<typeof startOpenCode>>;
  beforeAll(async () => {
    ocEnv = await startGatewayEnv();
    oc = await startOpenCode(
      [
        toolCallScenario({
          match: "print many lines",
          tool: "bash",
          arguments: { command: "seq 1 3000", description: "print 3000 lines" },
          text: "Printed them.",
        }),
      ],
      { workspaceRoot: ocEnv.workspaceDir, maxInlineOutput: 1024 },
    );
    await startWorker(ocEnv, oc.driver);
  }, 60_000);
  afterAll(async () => {
    await ocEnv?.close();
    await oc?.close();
  });

  it("shows the cut output and fetches the whole output from its artifact with Show full output", async () => {
    const response = await ocEnv.api("/v1/tasks", { method: "POST", json: { prompt: "print many lines" } });
    expect(response.status).toBe(202);
    const { taskID } = (await response.json()) as { taskID: string };
    expect((await ocEnv.api(`/v1/tasks/${taskID}/result?wait=60s`)).status).toBe(200);
    // The artifact the worker stored, as the API lists it (the event names the same key).
    const list = (await (await ocEnv.api(`/v1/tasks/${taskID}/artifacts`)).json()) as {
      items: { key: string; url: string }[];
    };
    const artifact = list.items.find((a) => a.key.startsWith(`artifacts/${taskID}/tool-`));
    expect(artifact, JSON.stringify(list.items)).toBeDefined();
    const bytes = await (await ocEnv.api(artifact!.url)).text();
    // (OpenCode keeps the tail of a long bash output itself; the worker's artifact holds what it got.)
    expect(bytes).toContain("\n2999\n3000");
    expect(bytes.length).toBeGreaterThan(4 * 1024);

    const page = await signedIn(TOKENS.operator, { url: ocEnv.url });
    await page.goto(`${ocEnv.url}/#/tasks/${taskID}`);
    const tool = page.locator("ol.story .ev-tool", { hasText: "bash" });
    await tool.locator("summary").click();
    await tool.getByRole("heading", { name: /^Output \(truncated: [\d,]+ bytes in all\)$/ }).waitFor();
    const shown = tool.getByTestId("tool-output");
    const head = (await shown.textContent())!;
    expect(head.length).toBeLessThanOrEqual(1024);
    expect(bytes.startsWith(head)).toBe(true);
    expect(head.length).toBeLessThan(bytes.length);

    await tool.getByRole("button", { name: "Show full output" }).click();
    await tool.getByRole("heading", { name: /^Output \(full, [\d,]+ bytes\)$/ }).waitFor();
    expect(await shown.textContent()).toBe(bytes);
    expect(await tool.getByRole("button", { name: "Show full output" }).count()).toBe(0);

    // A viewer may read it too (that another org's token may not: test/tenancy/gateway.test.ts).
    const viewer = await ocEnv.api(artifact!.url, { token: TOKENS.viewer });
    expect(viewer.status).toBe(200);
  });
});
