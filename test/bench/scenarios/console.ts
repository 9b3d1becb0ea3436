// 11. The web console in headless Chromium (Debian's package through playwright-core), beside a
// Node SSE client on the same gateway, in the same run:
//   - event latency: the worker's event timestamp -> the event shown in the task's page (its seq in
//     the story's data-last-seq), vs -> the event parsed by a Node SSE client;
//   - 1,000 tasks in the table: navigation -> 1,000 rows rendered, vs GET /v1/tasks?limit=1000
//     fetched and parsed in Node; then one pushed change (an index record rewritten) -> the row
//     shows it, vs -> a Node client of /v1/task-changes receives it;
//   - a task of 10,000 events opened after it ended: navigation -> all 10,000 in the story (its
//     newest 200 steps drawn, the rest behind "Show earlier steps"), vs a Node SSE client reading
//     the same 10,000; the longest main-thread task while it loads.
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { Page } from "playwright-core";
import type { CodingDispatcher } from "@station-coding/dispatcher";
import { Gateway, closeNamespace, hashToken, openNamespace } from "@station-coding/gateway";
import type { TaskIndexRecord } from "@station-coding/protocol";
import { waitFor } from "@station-coding/testkit";
import { launchChromium, openWatchedPage } from "@station-coding/testkit/browser";
import type { WatchedPage } from "@station-coding/testkit/browser";
import { BenchEnv, expectStatus, pool, script, taskID, within } from "../bench-env.js";
import type { Row, Scenario, ScenarioContext, ScenarioOutput } from "../scenario.js";
import { latencyRow } from "../scenario.js";
import { now, summarize } from "../stats.js";
import { readSse, wall } from "../sse.js";

const TOKEN = "bench-console-token-0123456789";
const AUTH = { Authorization: `Bearer ${TOKEN}` };

interface Stack {
  env: BenchEnv;
  dispatcher: CodingDispatcher;
  url: string;
  page: Page;
}

async function submit(stack: Stack, id: string, prompt: string): Promise<void> {
  const response = await fetch(`${stack.url}/v1/tasks`, {
    method: "POST",
    headers: { ...AUTH, "Content-Type": "application/json" },
    body: JSON.stringify({ taskID: id, prompt }),
  });
  if (response.status !== 202) throw new Error(`POST /v1/tasks: ${response.status} ${await response.text()}`);
}

async function waitResult(stack: Stack, id: string): Promise<void> {
  const response = await fetch(`${stack.url}/v1/tasks/${id}/result?wait=120s`, { headers: AUTH });
  if (response.status !== 200) throw new Error(`result of ${id}: ${response.status}`);
  expectStatus((await response.json()) as Parameters<typeof expectStatus>[0]);
}

/** Every event's worker timestamp by seq, from a replay over SSE. */
async function eventTimes(stack: Stack, id: string): Promise<Map<number, number>> {
  const times = new Map<number, number>();
  const response = await fetch(`${stack.url}/v1/tasks/${id}/events`, { headers: AUTH });
  await readSse(response, (eventID, type, data) => {
    if (type === "result") return;
    times.set(Number(eventID), Date.parse((JSON.parse(data) as { timestamp: string }).timestamp));
  });
  return times;
}

/**
 * In the page: records, by seq, when the story first showed it (wall clock, the same as the
 * worker's), from a MutationObserver on the story's data-last-seq.
 */
async function watchStory(page: Page): Promise<void> {
  await page.evaluate(`(() => {
    window.__shown = {};
    let last = 0;
    const check = () => {
      const el = document.querySelector("[data-last-seq]");
      const seq = el ? Number(el.getAttribute("data-last-seq")) : 0;
      const at = performance.timeOrigin + performance.now();
      for (let s = last + 1; s <= seq; s += 1) window.__shown[s] = at;
      if (seq > last) last = seq;
    };
    new MutationObserver(check).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-last-seq"] });
  })()`);
}

/**
 * In the page: notes the wall time (performance.timeOrigin + now, comparable with Node's `wall()`)
 * at which `condition` (a JS expression) first holds, checked on every DOM mutation. Playwright's
 * own waits poll at up to 100-500 ms intervals, which would swamp what they measure.
 */
async function watchFor(page: Page, condition: string): Promise<void> {
  await page.evaluate(`(() => {
    window.__at = undefined;
    const check = () => {
      if (window.__at === undefined && (${condition})) window.__at = performance.timeOrigin + performance.now();
      if (window.__at !== undefined) observer.disconnect();
    };
    const observer = new MutationObserver(check);
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    check();
  })()`);
}

/** The wall time noted by watchFor, once its condition held. */
async function seenAt(page: Page, timeout = 60_000): Promise<number> {
  // Polled from Node (waitForFunction would evaluate a string in the page, which its CSP forbids);
  // the time itself was noted in the page.
  return waitFor(() => page.evaluate<number | undefined>("window.__at"), {
    timeout,
    interval: 50,
    message: "the page to show it",
  });
}

/** Event latency in the page and in a Node SSE client, one paced task of `steps` text events. */
async function pageLatency(stack: Stack, steps: number): Promise<{ page: number[]; node: number[] }> {
  const id = taskID("console-live");
  const paced = Array.from({ length: steps }, (_, i) => [{ text: `step ${i} ` }, { sleep: 20 }]).flat();
  await submit(stack, id, script(...paced));
  await stack.page.goto(`${stack.url}/#/tasks/${id}`);
  await stack.page.locator("[data-last-seq]").waitFor();
  await watchStory(stack.page);
  const node: number[] = [];
  const reading = fetch(`${stack.url}/v1/tasks/${id}/events`, { headers: AUTH }).then((r) =>
    readSse(r, (_id, type, data) => {
      if (type === "result") return;
      node.push(wall() - Date.parse((JSON.parse(data) as { timestamp: string }).timestamp));
    }),
  );
  await waitResult(stack, id);
  await within(30_000, "the node SSE client", reading);
  await stack.page.getByTestId("result").waitFor({ timeout: 30_000 });
  const shown = await stack.page.evaluate<Record<string, number>>("window.__shown");
  const times = await eventTimes(stack, id);
  // Events the page had already shown when the observer started (replayed on open) are left out.
  const page: number[] = [];
  for (const [seq, at] of Object.entries(shown)) {
    const emitted = times.get(Number(seq));
    if (emitted !== undefined) page.push(at - emitted);
  }
  if (page.length < steps / 2) throw new Error(`the page showed only ${page.length} of ${steps} events live`);
  return { page, node };
}

/** Writes `count` index records straight into the bucket. */
async function fillIndex(env: BenchEnv, dispatcher: CodingDispatcher, count: number): Promise<void> {
  const kv = await new Kvm(jetstream(await env.connect("bench-console-fill"))).open(
    dispatcher.names.kv.tasks,
  );
  const base = Date.now() - count * 1000;
  await pool(
    Array.from({ length: count }, (_, i) => i),
    256,
    async (i) => {
      const record: TaskIndexRecord = {
        taskID: `tbl-${i}`,
        status: "completed",
        op: "code",
        session: `s${i % 50}`,
        worker: `w${i % 8}`,
        submittedAt: new Date(base + i * 1000).toISOString(),
        prompt: `task ${i} of the table benchmark: add a test for the parser and fix what it finds`,
        metrics: { duration: 1000 + i, tokens: 100 + i, cost: 0.001 * i, toolCalls: 1 },
      };
      await kv.put(record.taskID, JSON.stringify(record));
    },
  );
}

async function tableRender(
  stack: Stack,
  rounds: number,
): Promise<{ page: number[]; node: number[]; change: number[]; changeNode: number[] }> {
  const page: number[] = [];
  const node: number[] = [];
  const change: number[] = [];
  const changeNode: number[] = [];
  const kv = await new Kvm(jetstream(await stack.env.connect("bench-console-change"))).open(
    stack.dispatcher.names.kv.tasks,
  );
  for (let round = 0; round < rounds; round += 1) {
    const started = now();
    const response = await fetch(`${stack.url}/v1/tasks?limit=1000`, { headers: AUTH });
    const list = (await response.json()) as { items: unknown[] };
    node.push(now() - started);
    if (list.items.length !== 1000) throw new Error(`GET /v1/tasks?limit=1000: ${list.items.length} items`);

    await stack.page.goto(`${stack.url}/#/overview`);
    await stack.page.getByRole("heading", { name: "Overview" }).waitFor();
    await watchFor(stack.page, `document.querySelectorAll("table.tasks tbody tr").length >= 1000`);
    const navigated = wall();
    await stack.page.goto(`${stack.url}/#/tasks`);
    page.push((await seenAt(stack.page)) - navigated);

    // One pushed change with 1,000 rows on the page, beside a Node client of the same stream.
    const target = `tbl-${999 - round}`;
    const worker = `moved-${round}`;
    const stream = await fetch(`${stack.url}/v1/task-changes`, { headers: AUTH });
    const nodeSeen = readSse(
      stream,
      (_id, _type, data) => (JSON.parse(data) as { taskID: string }).taskID === target,
    );
    const entry = await kv.get(target);
    const record: TaskIndexRecord = { ...entry!.json<TaskIndexRecord>(), worker };
    await watchFor(
      stack.page,
      `document.querySelector('tr[data-task="${target}"]')?.textContent.includes(${JSON.stringify(worker)})`,
    );
    const written = wall();
    await kv.put(target, JSON.stringify(record));
    await within(10_000, "the Node task-changes client", nodeSeen);
    changeNode.push(wall() - written);
    change.push((await seenAt(stack.page, 10_000)) - written);
  }
  return { page, node, change, changeNode };
}

async function bigTask(
  stack: Stack,
  events: number,
  rounds: number,
): Promise<{ page: number[]; node: number[]; longestTask: number[] }> {
  const id = taskID("console-big");
  // Text and thinking alternate, so that every event is its own step of the story (the worst case
  // for the page: one list item per event).
  const steps = Array.from({ length: events / 2 }, (_, i) => [
    { text: `t${i}` },
    { thinking: `k${i}` },
  ]).flat();
  await submit(stack, id, script(...steps));
  await waitResult(stack, id);
  const times = await eventTimes(stack, id);
  const total = Math.max(...times.keys());
  if (total < events) throw new Error(`the task has ${total} events, expected at least ${events}`);
  const page: number[] = [];
  const node: number[] = [];
  const longestTask: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    const started = now();
    let count = 0;
    await readSse(await fetch(`${stack.url}/v1/tasks/${id}/events`, { headers: AUTH }), (_id, type) => {
      if (type !== "result") count += 1;
    });
    node.push(now() - started);
    if (count !== total) throw new Error(`the Node client read ${count} of ${total} events`);

    await stack.page.goto(`${stack.url}/#/overview`);
    await stack.page.getByRole("heading", { name: "Overview" }).waitFor();
    await stack.page.evaluate(`(() => {
      window.__longest = 0;
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.__longest = Math.max(window.__longest, entry.duration);
      }).observe({ type: "longtask" });
    })()`);
    await watchFor(
      stack.page,
      `document.querySelector('[data-last-seq="${total}"]') && document.querySelector('[data-testid="result"]')`,
    );
    const navigated = wall();
    await stack.page.goto(`${stack.url}/#/tasks/${id}`);
    page.push((await seenAt(stack.page, 120_000)) - navigated);
    longestTask.push(await stack.page.evaluate<number>("window.__longest"));
    // The story draws its newest steps and keeps the earlier ones behind "Show earlier steps (N
    // more)": drawn + hidden must account for every step, the last one drawn being the last event.
    const items = await stack.page.locator("ol.story > li").count();
    const earlier = await stack.page.getByRole("button", { name: /^Show earlier steps/ }).count();
    const hidden = earlier
      ? Number(
          /\(([\d,]+) more\)/
            .exec(
              (await stack.page.getByRole("button", { name: /^Show earlier steps/ }).textContent()) ?? "",
            )?.[1]
            ?.replaceAll(",", "") ?? "0",
        )
      : 0;
    const last = Number(await stack.page.locator("ol.story > li").last().getAttribute("data-seq"));
    if (items + hidden < events || last !== total)
      throw new Error(
        `the story shows ${items} steps and hides ${hidden} (last seq ${last}), expected ${events} steps to seq ${total}`,
      );
  }
  return { page, node, longestTask };
}

export const consoleScenario: Scenario = {
  id: "console",
  title: "11. The web console in headless Chromium",
  async run(ctx: ScenarioContext): Promise<ScenarioOutput> {
    const quick = ctx.quick;
    const rows: Row[] = [];
    const notes: string[] = [];
    const details: Record<string, unknown> = {};
    await using env = await BenchEnv.start();
    const dispatcher = await env.dispatcher();
    const ns = await openNamespace(dispatcher);
    const gateway = Gateway.create({
      namespaces: [ns],
      tokens: [{ name: "bench", sha256: hashToken(TOKEN), role: "operator" }],
      rateLimit: { rps: 1_000_000, burst: 1_000_000 },
    });
    const { url } = await gateway.listen("127.0.0.1:0");
    const browser = await launchChromium();
    env.defer(async () => {
      await browser.close();
      await gateway.close();
      await closeNamespace(ns);
    });
    await env.worker({ coalesceMs: 0, concurrency: 2 });
    const watched: WatchedPage = await openWatchedPage(browser);
    const page = watched.page;
    await page.goto(`${url}/`);
    await page.getByLabel("Gateway token").fill(TOKEN);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    const stack: Stack = { env, dispatcher, url, page };

    ctx.log("console: event -> page latency");
    await pageLatency(stack, 5);
    const live = await pageLatency(stack, quick ? 30 : 200);
    rows.push(
      latencyRow(
        "event shown in the task page (worker timestamp -> story updated)",
        summarize(live.page),
        summarize(live.node),
        "Node SSE client on the same task (-> event parsed)",
      ),
    );

    ctx.log("console: 1,000 tasks in the table");
    await fillIndex(env, dispatcher, 1000);
    await waitFor(() => (ns.index?.size ?? 0) >= 1000, {
      timeout: 30_000,
      message: "the gateway's index view holding the 1,000 written records",
    });
    const table = await tableRender(stack, quick ? 2 : 6);
    rows.push(
      latencyRow(
        "1,000 tasks in the table (navigation -> 1,000th row rendered)",
        summarize(table.page),
        summarize(table.node),
        "GET /v1/tasks?limit=1000 fetched and parsed in Node",
      ),
    );
    rows.push(
      latencyRow(
        "a pushed change with 1,000 rows shown (index write -> row updated)",
        summarize(table.change),
        summarize(table.changeNode),
        "Node client of /v1/task-changes (-> change received)",
      ),
    );

    const events = quick ? 2_000 : 10_000;
    ctx.log(`console: a task of ${events} events`);
    const big = await bigTask(stack, events, quick ? 1 : 3);
    rows.push(
      latencyRow(
        `a finished task of ${events.toLocaleString("en-US")} events opened (navigation -> every event in the story)`,
        summarize(big.page),
        summarize(big.node),
        "Node SSE client reading the same events",
      ),
    );
    details.longestMainThreadTaskMs = big.longestTask;
    notes.push(
      `Page times: a MutationObserver in the page notes when the table has its 1,000th row, the changed row shows the change, and the story its last seq and the result (wall clock, compared with the Node side's); page latency: it records when the story's last seq first reaches each seq (performance.timeOrigin + now, the worker's clock); events 20 ms apart, coalescing off; the page renders at most once a frame. Longest main-thread task while the ${events.toLocaleString("en-US")}-event task loads: ${big.longestTask.map((ms) => `${Math.round(ms)} ms`).join(", ")} (one step per event, the newest 200 drawn and the rest behind "Show earlier steps"; a long task blocks input for its duration).`,
    );
    if (watched.errors.length > 0)
      throw new Error(`console errors in the page: ${watched.errors.join("; ")}`);
    return { rows, notes, details };
  },
};
