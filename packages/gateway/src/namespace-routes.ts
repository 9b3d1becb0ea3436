import type { Hono } from "hono";
import { ErrorCodes, StationError } from "@station-coding/protocol";
import { requireWriter } from "./auth.js";
import type { GatewayNamespace } from "./namespaces.js";
import { HttpProblem, notFound } from "./problem.js";
import type { GatewayEnv, RouteDeps } from "./route-context.js";
import { jsonBody, namespaceOf, schemaProblem, taskIDOf } from "./route-context.js";
import { BulkReplayRequest, ReplayRequest } from "./schemas.js";
import { taskLinks } from "./task-view.js";

/** The namespace routes: sessions, workers, status, dead letters and their replay. */
export function registerNamespaceRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get("/v1/me", (c) => {
    const principal = c.get("principal");
    const orgs =
      principal.role === "admin" && principal.org === undefined
        ? deps.namespaces.all.map((ns) => ns.org ?? "")
        : [principal.org ?? ""];
    return c.json({
      name: principal.name,
      role: principal.role,
      ...(principal.org !== undefined ? { org: principal.org } : {}),
      orgs,
    });
  });

  app.get("/v1/sessions", async (c) => {
    const { ns } = namespaceOf(c, deps);
    return c.json({ items: await ns.dispatcher.sessions.list(), next: null });
  });

  app.get("/v1/workers", async (c) => {
    const { ns } = namespaceOf(c, deps);
    return c.json({ items: (await ns.dispatcher.status()).workers, next: null });
  });

  app.get("/v1/status", async (c) => {
    const { ns } = namespaceOf(c, deps);
    return c.json(await ns.dispatcher.status());
  });

  app.get("/v1/dead-letters", async (c) => {
    const { ns } = namespaceOf(c, deps);
    return c.json({ items: await ns.dispatcher.deadLetters.list(), next: null });
  });

  app.post("/v1/dead-letters/replay", async (c) => {
    const principal = c.get("principal");
    requireWriter(principal, "replay dead letters");
    const { ns } = namespaceOf(c, deps);
    const parsed = BulkReplayRequest.safeParse(await jsonBody(c));
    if (!parsed.success) throw schemaProblem("the replay filter is invalid", parsed.error.issues);
    const filter = parsed.data;
    const wanted = filter.taskIDs ? new Set(filter.taskIDs) : undefined;
    const since = filter.since !== undefined ? Date.parse(filter.since) : undefined;
    const letters = (await ns.dispatcher.deadLetters.list())
      .filter((l) => !wanted || wanted.has(l.taskID))
      .filter((l) => filter.errorCode === undefined || l.errorCode === filter.errorCode)
      .filter((l) => since === undefined || Date.parse(l.deadAt) >= since)
      .slice(0, filter.limit ?? 100);
    const replayed: string[] = [];
    const failed: { taskID: string; detail: string }[] = [];
    for (const letter of letters) {
      try {
        await ns.dispatcher.deadLetters.replay(letter.taskID);
        replayed.push(letter.taskID);
      } catch (err) {
        failed.push({ taskID: letter.taskID, detail: err instanceof Error ? err.message : String(err) });
      }
    }
    deps.logger.info(
      { org: ns.org, token: principal.name, replayed: replayed.length, failed: failed.length },
      "bulk replay",
    );
    return c.json({ replayed, failed });
  });

  app.post("/v1/dead-letters/:taskID/replay", async (c) => {
    const principal = c.get("principal");
    requireWriter(principal, "replay dead letters");
    const taskID = taskIDOf(c);
    const { ns, orgQuery } = namespaceOf(c, deps);
    const parsed = ReplayRequest.safeParse((await jsonBody(c, { optional: true })) ?? {});
    if (!parsed.success) throw schemaProblem("the replay request is invalid", parsed.error.issues);
    await replayOne(ns, taskID, parsed.data.tokenFromKV);
    deps.logger.info({ taskID, org: ns.org, token: principal.name }, "dead letter replayed over HTTP");
    return c.json(
      { taskID, status: "queued" as const, duplicate: false, links: taskLinks(taskID, orgQuery) },
      202,
    );
  });
}

async function replayOne(
  ns: GatewayNamespace,
  taskID: string,
  tokenFromKV: string | undefined,
): Promise<void> {
  try {
    await ns.dispatcher.deadLetters.replay(taskID, tokenFromKV !== undefined ? { tokenFromKV } : {});
  } catch (err) {
    if (err instanceof StationError && err.code === ErrorCodes.InvalidTask) {
      if (/not found/.test(err.message)) throw notFound(`dead letter ${taskID}`);
      throw new HttpProblem(422, "replay-refused", err.message, { code: err.code });
    }
    throw err;
  }
}
